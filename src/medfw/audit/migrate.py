"""Move the checkpoint signing key of an older log out of the log (``medfw audit migrate``).

Logs of format 1 kept the checkpoint private key in their own ``meta`` table, so whoever could rewrite the log
could re-sign its checkpoints. Migration writes that key to its own 0600 file, deletes it from the log (SQLite
``secure_delete`` zeroes the freed bytes, the WAL is truncated and the file vacuumed), records an
``audit.migrate`` entry that says what happened, and signs a ``migrate`` checkpoint with the key in its new
place. The key pair stays the same, so the verification key keeps pinning it and older checkpoints still verify.
Because the private key was readable in the log until now, treat checkpoints witnessed *before* migration as
no stronger than the HMAC chain; checkpoints exported after it are trustworthy again.

Migration does not re-seal anything: entries altered before migration stay detectable by ``audit verify``.
With the verification key, :func:`migrate_log` verifies the log first and refuses a log that does not verify.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from medfw._io import atomic_write
from medfw.audit.checkpoint import SignedCheckpoint
from medfw.audit.ckeys import key_id, load_checkpoint_private_key
from medfw.audit.keys import VerificationKey
from medfw.audit.log import open_log
from medfw.audit.report import VerifyReport
from medfw.audit.sink import AuditEvent
from medfw.audit.store import open_store, sibling, storage_errors
from medfw.audit.store_sqlite import SqliteStore
from medfw.audit.verify import verify_log
from medfw.errors import AuditError

__all__ = ["MigrateResult", "migrate_log"]


@dataclass(frozen=True)
class MigrateResult:
    """What :func:`migrate_log` did (``report`` is the pre-migration verification, when a key was given)."""

    migrated: bool
    checkpoint_key: str | None
    checkpoint_key_id: str | None
    entry_seq: int | None
    checkpoint: SignedCheckpoint | None
    report: VerifyReport | None


def migrate_log(
    path: str | Path, *, checkpoint_key_out: str | Path | None = None, key: VerificationKey | None = None
) -> MigrateResult:
    """Move the embedded checkpoint key of the log at ``path`` to ``checkpoint_key_out`` (default ``LOG.ckey``).

    Returns ``migrated=False`` (nothing changed) when ``key`` is given and the log does not verify.

    Raises:
        AuditError: the log has no embedded key (already migrated, or created with an external key), or the
            key file exists.
        StorageError: the log cannot be written.
    """
    if key is not None:
        report = verify_log(path, key)
        if not report.ok:
            return MigrateResult(False, None, None, None, None, report)
    else:
        report = None
    with storage_errors(path):
        store = open_store(path)
        try:
            pem = store.get_meta("checkpoint_private_key")
        finally:
            store.close()
    if pem is None:
        raise AuditError("the log holds no checkpoint signing key (already migrated?)", path=str(path))
    private = load_checkpoint_private_key(pem)
    if checkpoint_key_out is None:
        checkpoint_key_out = sibling(path, ".ckey")
        if checkpoint_key_out is None:
            raise AuditError("a PostgreSQL log needs --checkpoint-key-out", field="checkpoint_key_out")
    out = Path(checkpoint_key_out)
    atomic_write(out, pem, mode=0o600, overwrite=False)
    kid = key_id(private.public_key())
    try:
        signed, seq = _move(path, str(out.resolve()), kid)
    except BaseException:
        with contextlib.suppress(OSError):
            out.unlink()
        raise
    return MigrateResult(True, str(out.resolve()), kid, seq, signed, report)


def _move(path: str | Path, ref: str, kid: str) -> tuple[SignedCheckpoint, int]:
    log = open_log(path, checkpoint_key=ref)
    try:
        signer = log._get_signer()
        with storage_errors(path), log._tx() as st:
            log._store.put_meta("checkpoint_key", ref.encode("utf-8"))
            log._store.delete_meta("checkpoint_private_key")
            entry = log._append_in_tx(
                st,
                AuditEvent(
                    type="audit.migrate",
                    outcome="success",
                    reason="checkpoint_key_out_of_log",
                    actor="audit",
                    data={
                        "change": "checkpoint signing key moved out of the log into its own key file",
                        "previously": "embedded in the log (meta checkpoint_private_key)",
                        "checkpoint_key": "file",
                        "checkpoint_key_id": kid,
                    },
                ),
            )
            signed = log._checkpoint_in_tx(st, "migrate", signer)
            log._rotate_if_used(st)
        store = log._store
        if isinstance(store, SqliteStore):
            store.vacuum()
    finally:
        log.close()
    return signed, entry.seq
