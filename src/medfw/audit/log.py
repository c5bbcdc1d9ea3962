"""The log writer: create a log, open it, append sealed entries, make signed checkpoints.

Contract:

* :func:`init_log` creates a log and returns the verification key (initial sealing key + pinned checkpoint
  public key) that the user keeps offline. The log itself only ever stores the *current* epoch key; the
  checkpoint signing key lives in its own 0600 key file or a PKCS#11 token (:mod:`medfw.audit.signing`).
* :func:`open_log` opens a log for appending: a writer *session* (one command, one CI step, one device boot).
  Opening writes nothing. The session's first write gets the next persisted boot number, and each session
  seals its entries in an epoch of its own: the key is advanced when the session closes (and, should a writer
  have died before closing, when the next session starts), so the key that sealed a finished session is gone.
  :func:`append_session` is the whole session in one transaction (the path ``medfw audit append`` takes).
* The epoch also advances every ``epoch_length`` entries and after every checkpoint, always *eagerly*: the
  stored key is always for an epoch that sealed no entry yet, or the one still being filled; the key of a
  finished epoch is overwritten in the same transaction that finishes it.
* Checkpoints are signed every ``checkpoint_interval`` entries, on request (:meth:`AuditLog.checkpoint`,
  ``medfw audit checkpoint``), at release points (evidence build, OTA publish), on export, and at close only
  when the session asked for it (``checkpoint_on_close``). Each is preceded by an ``audit.checkpoint`` entry so
  that the log records its own checkpoints. A due interval checkpoint whose key is unavailable is deferred to
  the next writer that has the key; the entries are sealed regardless.

Entry fields: ``seq``, ``epoch``, ``prev`` (chain), and in ``body``: ``v`` (record version), ``type``,
``outcome``, ``reason``, ``actor``, ``objects`` (digests), ``data``, ``ts`` (UTC), ``mono_ns`` (monotonic
clock, decimal string), ``boot_id``, ``boot_n`` (persisted session counter) and ``host`` (device/host id).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medfw._io import atomic_write
from medfw.audit.keys import KDF_HKDF, KDF_RATCHET, KEY_SIZE, VerificationKey, check_kdf, key_check_value, mac_key
from medfw.audit.merkle import CompactRange
from medfw.audit.record import GENESIS_PREV
from medfw.audit.sink import AuditEvent
from medfw.audit.state import (
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_EPOCH_LENGTH,
    LOG_FORMAT,
    LOG_FORMATS,
    Clock,
    SealedEntry,
    WriterState,
    log_kdf,
    utc_now,
)
from medfw.audit.store import LogStore, open_store, sibling, storage_errors
from medfw.audit.store_sqlite import SqliteStore
from medfw.audit.writer import AuditLog, open_log
from medfw.errors import AuditError

if TYPE_CHECKING:
    from medfw.audit.checkpoint import SignedCheckpoint
    from medfw.audit.signing import CheckpointSigner

__all__ = [
    "LOG_FORMAT",
    "AuditLog",
    "InitResult",
    "SealedEntry",
    "SessionResult",
    "append_session",
    "checkpoint",
    "init_log",
    "log_kdf",
    "open_log",
    "utc_now",
]


@dataclass(frozen=True)
class InitResult:
    """What :func:`init_log` produced."""

    log_id: str
    location: str
    verification_key: VerificationKey
    key_path: Path | None
    checkpoint_key_id: str
    checkpoint_key: str = ""


@dataclass(frozen=True)
class SessionResult:
    """What :func:`append_session` committed."""

    entries: tuple[SealedEntry, ...]
    #: the checkpoint signed in the session (asked for, or due at the interval), if any
    checkpoint: SignedCheckpoint | None
    #: why a due interval checkpoint was deferred (its key was unavailable), if one was
    deferred_checkpoint: str | None


def append_session(
    path: str | Path,
    events: Sequence[AuditEvent],
    *,
    checkpoint_reason: str | None = None,
    boot_id: str | None = None,
    host_id: str | None = None,
    clock: Clock | None = None,
    checkpoint_key: str | None = None,
) -> SessionResult:
    """One whole writer session in one transaction: seal ``events``, checkpoint if due or asked, erase the key.

    This is what ``medfw audit append`` does, and what a device does once per boot: one commit (one fsync) and
    one WAL purge, no signature unless the checkpoint interval is reached or ``checkpoint_reason`` is given.

    Raises:
        AuditError: bad events, or (with ``checkpoint_reason``) the checkpoint key is unavailable; nothing is
            appended then.
        StorageError: the commit failed (nothing was appended).
    """
    log = open_log(path, boot_id=boot_id, host_id=host_id, clock=clock, checkpoint_key=checkpoint_key)
    try:
        signer = log._get_signer() if checkpoint_reason is not None else None
        with storage_errors(path), log._tx() as st:
            entries = tuple(log._append_in_tx(st, e) for e in events)
            if checkpoint_reason is not None:
                log._checkpoint_in_tx(st, checkpoint_reason, signer)
            log._rotate_if_used(st)
        return SessionResult(
            entries=entries, checkpoint=log.signed_in_session, deferred_checkpoint=log.deferred_checkpoint
        )
    finally:
        log.close()


def _checkpoint_signer(
    path: str | Path, checkpoint_key: str | None, checkpoint_key_out: str | Path | None, kind: str
) -> tuple[CheckpointSigner, Path | None]:
    """Open the given checkpoint key, or generate one into its own 0600 file (default ``LOG.ckey``)."""
    from medfw.audit.signing import check_reference, create_key_file, is_pkcs11, open_signer  # noqa: PLC0415

    if checkpoint_key is not None:
        if checkpoint_key_out is not None:
            raise AuditError("give either an existing checkpoint key or where to create one", field="checkpoint_key")
        signer = open_signer(check_reference(checkpoint_key))
        if not is_pkcs11(checkpoint_key):
            signer = dataclasses.replace(signer, reference=str(Path(signer.reference).resolve()))
        return signer, None
    if checkpoint_key_out is None:
        checkpoint_key_out = sibling(path, ".ckey")
        if checkpoint_key_out is None:
            raise AuditError(
                "a PostgreSQL log needs a checkpoint key file or pkcs11: URI (it is never stored in the log)",
                field="checkpoint_key",
            )
    out = Path(checkpoint_key_out)
    return create_key_file(out, kind), out


def init_log(
    path: str | Path,
    *,
    log_id: str | None = None,
    key_out: str | Path | None = None,
    host_id: str | None = None,
    epoch_length: int = DEFAULT_EPOCH_LENGTH,
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL,
    checkpoint_key_type: str = "ed25519",
    checkpoint_key: str | None = None,
    checkpoint_key_out: str | Path | None = None,
    clock: Clock | None = None,
    kdf: str = KDF_RATCHET,
    initial_key: bytes | None = None,
) -> InitResult:
    """Create a log: the ``audit.init`` entry sealed with the initial key, after which the key ratchets.

    The verification key (initial sealing key + checkpoint public key) is returned and, with ``key_out``,
    written there with mode 0600 before the log is created. Keep it offline: whoever holds it can forge
    entries of every epoch. The checkpoint signing key is ``checkpoint_key`` (an existing key file or a
    ``pkcs11:`` URI) or a new ``checkpoint_key_type`` key written to ``checkpoint_key_out`` (default
    ``LOG.ckey``, mode 0600); the log stores only where it is and its public key. ``kdf`` is
    ``sha256-ratchet``; ``hkdf-sha256`` makes a log of format 1 (for compatibility tests). ``initial_key`` (32 bytes)
    replaces the random initial key when the verifier derives it itself (a unit's log sealed with a key derived at
    provisioning).

    Raises:
        AuditError: a log exists at ``path``, a key file exists, or a parameter is out of range.
        StorageError: the log or key cannot be written.
    """
    log_id, initial = _init_params(log_id, epoch_length, checkpoint_interval, initial_key)
    host = host_id if host_id is not None else socket.gethostname()
    if checkpoint_key is None:
        from medfw.audit.ckeys import generate_checkpoint_key  # noqa: PLC0415 - appending needs none of this

        generate_checkpoint_key(checkpoint_key_type)  # reject an unknown type before anything is written
    store = open_store(path, create=True)
    written: list[Path] = []
    try:
        signer, created = _checkpoint_signer(path, checkpoint_key, checkpoint_key_out, checkpoint_key_type)
        written += [created] if created is not None else []
        pub_pem = signer.public_pem()
        vk = VerificationKey(log_id=log_id, initial_key=initial, checkpoint_public_key_pem=pub_pem, kdf=check_kdf(kdf))
        key_path = Path(key_out) if key_out is not None else None
        if key_path is not None:
            atomic_write(key_path, vk.to_bytes(), mode=0o600, overwrite=False)
            written.append(key_path)
        config = {"epoch_length": epoch_length, "checkpoint_interval": checkpoint_interval}
        key_id = _create(store, vk, signer, host=host, config=config, clock=clock)
        store.after_epoch_change()
    except BaseException:
        _discard(store, written)
        raise
    store.close()
    return InitResult(log_id, store.label, vk, key_path, checkpoint_key_id=key_id, checkpoint_key=signer.reference)


def _init_params(
    log_id: str | None, epoch_length: int, checkpoint_interval: int, initial_key: bytes | None
) -> tuple[str, bytes]:
    """Check :func:`init_log`'s parameters; return the log id and the initial key (random unless given)."""
    if epoch_length < 1 or checkpoint_interval < 1:
        raise AuditError("epoch_length and checkpoint_interval must be at least 1", field="epoch_length")
    log_id = log_id or uuid.uuid4().hex
    if not log_id.isprintable() or len(log_id) > 128:
        raise AuditError("log id must be printable and at most 128 characters", field="log_id")
    if initial_key is not None and len(initial_key) != KEY_SIZE:
        raise AuditError(f"initial key must be {KEY_SIZE} bytes", field="initial_key")
    return log_id, initial_key if initial_key is not None else os.urandom(KEY_SIZE)


def _discard(store: LogStore, written: list[Path]) -> None:
    """Remove what a failed :func:`init_log` created: the SQLite file (and its WAL) and the key files."""
    store.close()
    if isinstance(store, SqliteStore):
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(store.label + suffix).unlink()
    for p in written:
        with contextlib.suppress(OSError):
            p.unlink()


def _create(
    store: LogStore,
    vk: VerificationKey,
    signer: CheckpointSigner,
    *,
    host: str,
    config: dict[str, int],
    clock: Clock | None,
) -> str:
    """Write the meta data and the ``audit.init`` entry (sealed with the initial key, which is then ratcheted away);
    return the checkpoint key id."""
    from medfw.audit.ckeys import key_id  # noqa: PLC0415 - appending needs neither
    from medfw.audit.signing import is_pkcs11  # noqa: PLC0415

    kid = key_id(signer.public_key)
    meta = {
        "format": LOG_FORMAT if vk.kdf == KDF_RATCHET else LOG_FORMATS[0],
        "log_id": vk.log_id.encode(),
        "host_id": host.encode(),
        "config": json.dumps(config).encode(),
        "kcv": key_check_value(vk.initial_key, vk.log_id),
        "checkpoint_key": signer.reference.encode("utf-8"),
        "checkpoint_public_key": vk.checkpoint_public_key_pem,
    }
    if vk.kdf != KDF_HKDF:
        meta["kdf"] = vk.kdf.encode()
    st = WriterState(
        next_seq=0,
        prev=GENESIS_PREV,
        epoch=0,
        key=vk.initial_key,
        used=0,
        compact=CompactRange(),
        boot_n=0,
        since_checkpoint=0,
    )
    with store.write(initial=True):
        store.create(meta)
        log = AuditLog(store, clock=clock, host_id=host)
        st.mac = mac_key(vk.initial_key, vk.log_id, 0, vk.kdf)
        data = {
            **config,
            "checkpoint_key_id": kid,
            "checkpoint_key": "pkcs11" if is_pkcs11(signer.reference) else "file",
            "kdf": vk.kdf,
            "format": meta["format"].decode(),
        }
        log._session_started = True
        log._seal(st, AuditEvent(type="audit.init", outcome="success", actor="audit", data=data))
        log._rotate_if_used(st)  # the initial key never stays in the log
        log._save_state(st)
    return kid


def checkpoint(
    path: str | Path,
    *,
    reason: str = "request",
    out: str | Path | None = None,
    checkpoint_key: str | None = None,
) -> SignedCheckpoint:
    """Open the log at ``path``, make a checkpoint, optionally write it to ``out``, and return it."""
    log = open_log(path, checkpoint_key=checkpoint_key)
    try:
        signed = log.checkpoint(reason)
    finally:
        log.close()
    if out is not None:
        atomic_write(out, signed.to_bytes())
    return signed
