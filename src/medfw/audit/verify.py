"""Verify a whole log from the initial key: chain, epoch binding, HMAC tags, Merkle root, checkpoints.

:func:`verify_log` never raises for a log that fails verification: it returns a :class:`VerifyReport` that is
either ok or names the first bad seq and a classification (:data:`medfw.audit.report.CLASSIFICATIONS`). It raises
:class:`medfw.errors.AuditError` only for unusable input: not a log, a key or checkpoint of another log.

Order of work, chosen so that two cores are busy from the start: read the log's meta data in one query and check
the key; fork the scan of the later parts of a large SQLite log (:mod:`medfw.audit.parallel`); meanwhile load the
report and checkpoint code, the pinned checkpoint key, and check the signatures of held and stored checkpoints;
scan the first part; then compare sizes and Merkle roots. Everything the fork waits for is kept small: the modules
loaded before it use no :mod:`dataclasses` (which loads :mod:`inspect`), and :mod:`medfw.audit.report` is loaded
after it. The per-entry checks are :mod:`medfw.audit.scan`; when an entry fails,
:mod:`medfw.audit.classify` says what happened.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from medfw.audit.keys import KDF_HKDF, KDFS, EpochKeys, VerificationKey, key_check_value
from medfw.audit.parallel import PARALLEL_MIN, ParallelScan
from medfw.audit.scan import Scan, scan, with_progress
from medfw.audit.store import LogStore, open_store, storage_errors
from medfw.audit.store_sqlite import SqliteStore
from medfw.errors import AuditError

if TYPE_CHECKING:
    from medfw.audit.checkpoint import SignedCheckpoint
    from medfw.audit.report import Run, VerifyReport

__all__ = ["verify_log"]

_PARALLEL_MIN = PARALLEL_MIN


def _resolve_key(key: bytes | VerificationKey, log_id: str, location: str) -> tuple[bytes, bytes | None, str | None]:
    if isinstance(key, VerificationKey):
        vk = key
    elif len(key) == 32:
        return key, None, None
    else:
        vk = VerificationKey.from_bytes(key)
    if vk.log_id != log_id:
        raise AuditError(
            f"verification key belongs to log {vk.log_id!r}, not to this log ({log_id!r})",
            path=location,
            field="log_id",
        )
    return vk.initial_key, vk.checkpoint_public_key_pem, vk.kdf


def _state_next_seq(state: bytes | None) -> int | None:
    try:
        return int(json.loads(state or b"{}")["next_seq"])
    except (ValueError, KeyError, TypeError):
        return None


def verify_log(
    path: str | Path,
    key: bytes | VerificationKey,
    *,
    checkpoint: SignedCheckpoint | Sequence[SignedCheckpoint] | None = None,
    public_key_pem: bytes | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> VerifyReport:
    """Verify the log at ``path`` with the initial key.

    Args:
        path: the log (file path or PostgreSQL URL).
        key: a :class:`VerificationKey`, the bytes of a key file, or the raw 32-byte initial key (then
            checkpoints are checked against the public key stored in the log, which is weaker).
        checkpoint: checkpoints held by the verifier (kept earlier, or fetched from a witness); they detect
            truncation, rollback and forks.
        public_key_pem: pin this checkpoint public key instead of the verification key's.
        progress: called with ``(entries done, entries total)`` now and then.
        workers: scan a large SQLite log in this many processes (the result is the same; any irregularity is
            re-examined by the sequential scan, which also classifies it).

    Raises:
        AuditError: ``path`` is not a log, or the key or a checkpoint belongs to another log.
    """
    held: list[SignedCheckpoint] = []
    if checkpoint:  # None or none held: the checkpoint code is loaded after the fork; else the caller loaded it
        from medfw.audit.checkpoint import SignedCheckpoint  # noqa: PLC0415 - see the module docstring

        held = [checkpoint] if isinstance(checkpoint, SignedCheckpoint) else list(checkpoint)
    with storage_errors(path):
        store = open_store(path)
        try:
            return _verify(store, key, held, public_key_pem, progress, workers)
        finally:
            store.close()


def _verify(  # noqa: PLR0917 - the private core of verify_log, same arguments
    store: LogStore,
    key: bytes | VerificationKey,
    held: list[SignedCheckpoint],
    public_key_pem: bytes | None,
    progress: Callable[[int, int], None] | None,
    workers: int,
) -> VerifyReport:
    meta = store.all_meta()
    if "format" not in meta or "log_id" not in meta:
        raise AuditError("not a medfw audit log (meta missing)", path=store.label)
    log_id = meta["log_id"].decode("utf-8", "replace")
    initial, pinned_pem, pinned_kdf = _resolve_key(key, log_id, store.label)
    kdf = meta["kdf"].decode("utf-8", "replace") if "kdf" in meta else KDF_HKDF
    kcv = meta.get("kcv")
    if kcv is None or not hmac.compare_digest(kcv, key_check_value(initial, log_id)):
        return _wrong_key(store, log_id, "the key is not this log's verification key")
    if kdf not in KDFS or (pinned_kdf is not None and kdf != pinned_kdf):
        return _wrong_key(
            store, log_id, f"the log claims key derivation {kdf!r}, the verification key is for {pinned_kdf!r}"
        )
    keys = EpochKeys(initial, log_id, kdf)
    par = None
    if workers > 1 and isinstance(store, SqliteStore):
        par = ParallelScan.start(store, keys, workers, min_size=_PARALLEL_MIN)
    try:
        from medfw.audit.report import Run  # noqa: PLC0415 - once the scan runs: see the module docstring

        # count(*) visits every row; it is needed up front only for progress reports (a full scan counts the rows).
        run = Run(store, log_id, store.count() if progress is not None else None)
        return _verify_started(run, meta, keys, par, held, public_key_pem or pinned_pem, progress)
    finally:
        if par is not None:
            par.cancel()


def _wrong_key(store: LogStore, log_id: str, message: str) -> VerifyReport:
    from medfw.audit.report import WRONG_KEY, Run  # noqa: PLC0415 - see the module docstring

    return Run(store, log_id, None).report(ok=False, verified=0, classification=WRONG_KEY, message=message)


def _verify_started(  # noqa: PLR0917 - one step of _verify
    run: Run,
    meta: dict[str, bytes],
    keys: EpochKeys,
    par: ParallelScan | None,
    held: list[SignedCheckpoint],
    pinned_pem: bytes | None,
    progress: Callable[[int, int], None] | None,
) -> VerifyReport:
    """Everything after the key check, while a parallel scan (if any) runs."""
    from medfw.audit.checks import Stored, check_checkpoints, check_held, read_stored  # noqa: PLC0415 - after fork
    from medfw.audit.ckeys import load_checkpoint_public_key  # noqa: PLC0415

    store = run.store
    trusted = load_checkpoint_public_key(pinned_pem or meta.get("checkpoint_public_key", b""), path=store.label)
    if pinned_pem is None:
        run.warnings.append("checkpoint key taken from the log itself (not pinned by a key file)")
    if "checkpoint_private_key" in meta:
        run.warnings.append(
            "the checkpoint signing key is stored inside the log, so whoever can rewrite the log can re-sign its "
            "checkpoints: run 'medfw audit migrate'"
        )
    failed = check_held(run, held, trusted)
    if failed is not None:
        return failed
    cp_size = max((c.checkpoint.size for c in held), default=None)
    run.extra["checkpoint_size"] = cp_size
    try:  # while the other parts are scanned
        stored: list[Stored] | None = read_stored(run, trusted)
    except sqlite3.DatabaseError:
        stored = None  # damaged storage: the scan reports it
    result = _scan(run, keys, par, progress)
    failed = _scan_failure(run, meta, keys, result, cp_size)
    if failed is None:
        stored = read_stored(run, trusted) if stored is None else stored
        failed = check_checkpoints(run, result.merkle(), held, stored, pinned=pinned_pem is not None)
    return failed if failed is not None else _final(run, result.size, _state_next_seq(meta.get("state")))


def _scan(run: Run, keys: EpochKeys, par: ParallelScan | None, progress: Callable[[int, int], None] | None) -> Scan:
    """The scan: joined from the parallel parts when they line up, else sequential."""
    result = par.join() if par is not None else None
    if result is None:
        rows = run.store.iter_rows()
        if progress is not None:
            rows = with_progress(rows, progress, run.total or 0)
        result = scan(rows, keys, Scan())
    if progress is not None:
        progress(result.seq, run.total or 0)
    n = result.size
    if run.total is None and result.bad is None and result.damaged is None:
        # Every row iter_rows() yielded verified: the scan counted them; add any rows outside its range.
        run.total = n + run.store.count_outside()
    run.extra["last_epoch"] = result.epoch if n else None
    return result


def _scan_failure(
    run: Run, meta: dict[str, bytes], keys: EpochKeys, result: Scan, cp_size: int | None
) -> VerifyReport | None:
    """A report for damaged storage or a bad entry (classified); None when the chain is intact (or torn at the end)."""
    from medfw.audit.report import STORAGE_DAMAGED  # noqa: PLC0415 - see the module docstring

    n = result.size
    if result.damaged is not None:
        return run.report(
            ok=False,
            verified=n,
            first_bad_seq=n,
            classification=STORAGE_DAMAGED,
            message=f"storage is damaged after seq {n - 1} ({result.damaged}); this is file damage, not proof of "
            "tampering",
        )
    if result.bad is None:
        return None
    from medfw.audit.classify import classify_failure, torn  # noqa: PLC0415 - only for a log that failed

    rows = list(run.store.iter_entries())
    rec, tag = rows[result.bad]
    if result.bad == len(rows) - 1 and torn(rec, tag) and _state_next_seq(meta.get("state")) == result.bad:
        run.extra["torn_tail"] = True
        run.warnings.append(f"the last write (position {result.bad}) is incomplete and was never committed; ignored")
        return None
    first, cls, msg = classify_failure(rows, result, keys, meta.get("state"), cp_size)
    return run.report(ok=False, verified=len(result.hashes), first_bad_seq=first, classification=cls, message=msg)


def _final(run: Run, n: int, state_next: int | None) -> VerifyReport:
    """The entries and checkpoints agree: compare with the writer's own count and report."""
    from medfw.audit.report import TRUNCATED  # noqa: PLC0415 - see the module docstring

    if state_next is not None and state_next > n:
        return run.report(
            ok=False,
            verified=n,
            first_bad_seq=n,
            classification=TRUNCATED,
            message=f"the writer committed {state_next} entries but only {n} remain: the tail was removed",
        )
    if state_next is not None and state_next < n:
        run.warnings.append(f"the writer state counts {state_next} entries but {n} verified")
    cp_size = run.extra.get("checkpoint_size")
    msg = f"{n} entries intact" + (f", consistent with the checkpoint of size {cp_size}" if cp_size is not None else "")
    return run.report(ok=True, verified=n, message=msg)
