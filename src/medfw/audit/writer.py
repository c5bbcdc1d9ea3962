"""An open audit log: one writer session (see :mod:`medfw.audit.log` for the contract).

The checkpoint and signature code is imported only when a session makes a checkpoint, so a session that only
appends (``medfw audit append``, a device boot) loads SHA-256, HMAC and SQLite, nothing more.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from medfw.audit.keys import mac_key, next_epoch_key, seal_tag
from medfw.audit.record import RECORD_VERSION, encode_record, entry_hash
from medfw.audit.sink import AuditEvent
from medfw.audit.state import LOG_FORMATS, Clock, SealedEntry, WriterState, format_ts, log_kdf, utc_now
from medfw.audit.store import LogStore, open_store, storage_errors
from medfw.audit.vocabulary import check_event_type, check_outcome
from medfw.errors import AuditError, MedfwError

if TYPE_CHECKING:
    from medfw.audit.checkpoint import SignedCheckpoint

__all__ = ["AuditLog", "open_log"]


class AuditLog:
    """An open audit log (an :class:`medfw.audit.sink.AuditSink`). Use :func:`open_log` to get one."""

    def __init__(
        self,
        store: LogStore,
        *,
        boot_id: str | None = None,
        host_id: str | None = None,
        clock: Clock | None = None,
        checkpoint_key: str | None = None,
        checkpoint_on_close: bool = False,
    ) -> None:
        self._store = store
        self.location = store.label
        fmt = store.get_meta("format")
        if fmt not in LOG_FORMATS:
            raise AuditError("not a medfw audit log (format marker missing)", path=self.location, field="format")
        self.log_id = self._meta_text("log_id")
        config = json.loads(self._meta_text("config"))
        self.epoch_length = int(config["epoch_length"])
        self.checkpoint_interval = int(config["checkpoint_interval"])
        self.kdf = log_kdf(store)
        self.host_id = host_id if host_id is not None else self._meta_text("host_id")
        self.checkpoint_public_key_pem = self._meta("checkpoint_public_key")
        ref = store.get_meta("checkpoint_key")
        self._key_ref = checkpoint_key or (ref.decode("utf-8") if ref is not None else None)
        self._signer: Any = None
        self.boot_id = boot_id if boot_id is not None else uuid.uuid4().hex
        self._clock: Clock = clock or utc_now
        self._checkpoint_on_close = checkpoint_on_close
        self._batch_state: WriterState | None = None
        self._closed = False
        self._session_started = False
        self._dirty = False  # this session sealed entries in the current epoch
        self._appended_since_checkpoint = False
        #: why the last due interval checkpoint was deferred (None when none was)
        self.deferred_checkpoint: str | None = None
        #: the last checkpoint this session signed (interval, requested or close)
        self.signed_in_session: SignedCheckpoint | None = None

    # -- meta helpers -------------------------------------------------------------------------------
    def _meta(self, name: str) -> bytes:
        value = self._store.get_meta(name)
        if value is None:
            raise AuditError(f"audit log has no {name}", path=self.location, field=name)
        return value

    def _meta_text(self, name: str) -> str:
        return self._meta(name).decode("utf-8")

    def _load_state(self) -> WriterState:
        st = WriterState.from_bytes(self._meta("state"), path=self.location)
        st.mac = mac_key(st.key, self.log_id, st.epoch, self.kdf)
        return st

    def _save_state(self, st: WriterState) -> None:
        self._store.put_meta("state", st.to_bytes())

    def _rotate_if_used(self, st: WriterState) -> bool:
        if st.used == 0:
            return False
        st.key = next_epoch_key(st.key, self.log_id, st.epoch, self.kdf)
        st.epoch += 1
        st.used = 0
        st.mac = mac_key(st.key, self.log_id, st.epoch, self.kdf)
        self._dirty = False
        return True

    def _begin(self, st: WriterState) -> None:
        """First write of this session: take the next boot number and a fresh epoch (if a dead writer left one)."""
        if self._session_started:
            return
        self._session_started = True
        st.boot_n += 1
        self._rotate_if_used(st)

    @property
    def boot_n(self) -> int:
        """This session's boot number (assigned at its first write)."""
        st = self._batch_state or self._load_state()
        return st.boot_n if self._session_started else st.boot_n + 1

    @contextlib.contextmanager
    def _tx(self) -> Iterator[WriterState]:
        """One write transaction on the writer state (or the open batch's); purges old keys after an epoch change."""
        if self._batch_state is not None:
            yield self._batch_state
            return
        with self._store.write():
            st = self._load_state()
            epoch0 = st.epoch
            self._begin(st)
            yield st
            self._save_state(st)
        if st.epoch != epoch0:
            self._store.after_epoch_change()

    # -- appending ----------------------------------------------------------------------------------
    def _seal(self, st: WriterState, event: AuditEvent) -> SealedEntry:
        check_event_type(event.type)
        check_outcome(event.outcome)
        for name, value in (("reason", event.reason), ("actor", event.actor)):
            if value is not None and not isinstance(value, str):
                raise AuditError(f"event {name} must be a string", field=name)
        objects = dict(event.objects)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in objects.items()):
            raise AuditError("event objects must map strings to strings", field="objects")
        body: dict[str, Any] = {
            "v": RECORD_VERSION,
            "type": str(event.type),
            "outcome": str(event.outcome),
            "reason": event.reason,
            "actor": event.actor,
            "objects": objects,
            "data": dict(event.data),
            "ts": format_ts(self._clock()),
            "mono_ns": str(time.monotonic_ns()),
            "boot_id": self.boot_id,
            "boot_n": st.boot_n,
            "host": self.host_id,
        }
        record = encode_record(body, seq=st.next_seq, epoch=st.epoch, prev=st.prev)
        eh = entry_hash(record)
        tag = seal_tag(st.mac, eh)
        entry = SealedEntry(seq=st.next_seq, epoch=st.epoch, record=record, entry_hash=eh, tag=tag)
        self._store.insert_entries([(st.next_seq, record, tag)])
        st.next_seq += 1
        st.prev = eh.hex()
        st.used += 1
        st.since_checkpoint += 1
        st.compact.append(eh)
        self._dirty = True
        if st.used >= self.epoch_length:
            self._rotate_if_used(st)
        return entry

    def _check_open(self) -> None:
        if self._closed:
            raise AuditError("audit log is closed", path=self.location)

    def _append_in_tx(self, st: WriterState, event: AuditEvent) -> SealedEntry:
        entry = self._seal(st, event)
        self._appended_since_checkpoint = True
        if st.since_checkpoint >= self.checkpoint_interval:
            signer = self._try_signer()
            if signer is not None:
                self._checkpoint_in_tx(st, "interval", signer)
        return entry

    def append(self, event: AuditEvent) -> SealedEntry:
        """Seal and durably append ``event``; return the committed entry.

        Raises:
            AuditError: unknown event type or outcome, or data that JSON cannot carry.
            StorageError: the commit failed (nothing was appended).
        """
        self._check_open()
        with self._tx() as st:
            return self._append_in_tx(st, event)

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` durably (the :class:`~medfw.audit.sink.AuditSink` protocol)."""
        self.append(event)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group appends into one transaction (one fsync); nothing in the group is durable before it ends."""
        self._check_open()
        if self._batch_state is not None:
            raise AuditError("batches do not nest", path=self.location)
        started, dirty = self._session_started, self._dirty
        with self._tx() as st:
            self._batch_state = st
            try:
                yield
            except BaseException:
                self._session_started, self._dirty = started, dirty
                raise
            finally:
                self._batch_state = None

    # -- checkpoints --------------------------------------------------------------------------------
    def _get_signer(self) -> Any:
        if self._signer is None:
            if self._key_ref is None:
                from medfw.audit.ckeys import load_checkpoint_private_key  # noqa: PLC0415

                # A log of format 1 that was not migrated yet still carries its key (verify warns about it).
                embedded = self._store.get_meta("checkpoint_private_key")
                if embedded is None:
                    raise AuditError("the log names no checkpoint signing key", path=self.location)
                self._signer = load_checkpoint_private_key(embedded)
            else:
                from medfw.audit.signing import open_signer  # noqa: PLC0415 - see the module docstring

                self._signer = open_signer(self._key_ref)
        return self._signer

    def _try_signer(self) -> Any:
        try:
            signer = self._get_signer()
        except MedfwError as e:
            self.deferred_checkpoint = f"interval checkpoint deferred: {e.message}"
            return None
        self.deferred_checkpoint = None
        return signer

    def _checkpoint_in_tx(self, st: WriterState, reason: str, signer: Any) -> SignedCheckpoint:
        from medfw.audit.checkpoint import Checkpoint, sign_checkpoint  # noqa: PLC0415 - see the module docstring
        from medfw.audit.ckeys import key_id, load_checkpoint_public_key  # noqa: PLC0415

        self._seal(st, AuditEvent(type="audit.checkpoint", outcome="success", reason=reason, actor="audit"))
        cp = Checkpoint(
            log_id=self.log_id,
            size=st.next_seq,
            root=st.compact.root(),
            last_seq=st.next_seq - 1,
            epoch=st.epoch if st.used else st.epoch - 1,
            boot_id=self.boot_id,
            time=format_ts(self._clock()),
            reason=reason,
        )
        signed = sign_checkpoint(cp, signer)
        if signed.key_id != key_id(load_checkpoint_public_key(self.checkpoint_public_key_pem)):
            raise AuditError("the checkpoint signing key is not the key this log was created with", path=self.location)
        self._store.insert_checkpoint(cp.size, signed.to_bytes())
        self.signed_in_session = signed
        st.since_checkpoint = 0
        self._rotate_if_used(st)
        self._appended_since_checkpoint = False
        return signed

    def checkpoint(self, reason: str = "request") -> SignedCheckpoint:
        """Append an ``audit.checkpoint`` entry, then sign and store a checkpoint covering it.

        Call with ``reason="pre-update"`` before installing an update and at release points, so that a
        rollback of the log across them is detectable. The epoch key advances afterwards.

        Raises:
            AuditError: the checkpoint signing key is unavailable or is not this log's key.
        """
        self._check_open()
        if not reason or len(reason) > 64 or not reason.isprintable():
            raise AuditError("checkpoint reason must be 1-64 printable characters", field="reason")
        signer = self._get_signer()
        with self._tx() as st:
            return self._checkpoint_in_tx(st, reason, signer)

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """Return the most recent stored checkpoint, if any."""
        from medfw.audit.checkpoint import SignedCheckpoint  # noqa: PLC0415 - see the module docstring

        cps = self._store.checkpoints()
        if not cps:
            return None
        return SignedCheckpoint.from_bytes(cps[-1][1], path=self.location)

    @property
    def size(self) -> int:
        """Number of committed entries."""
        return self._load_state().next_seq

    # -- lifecycle ----------------------------------------------------------------------------------
    def end_session(self) -> None:
        """Close the session's epoch: erase the key that sealed its entries (and checkpoint, if asked at open)."""
        self._check_open()
        want_cp = self._checkpoint_on_close and self._appended_since_checkpoint
        if not self._dirty and not want_cp:
            return
        signer = self._get_signer() if want_cp else None
        with self._tx() as st:
            if want_cp:
                self._checkpoint_in_tx(st, "close", signer)
            self._rotate_if_used(st)

    def close(self) -> None:
        """End the session (see :meth:`end_session`) and release the store."""
        if self._closed:
            return
        try:
            self.end_session()
        finally:
            self._closed = True
            self._store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_log(
    path: str | Path,
    *,
    boot_id: str | None = None,
    host_id: str | None = None,
    clock: Clock | None = None,
    checkpoint_key: str | None = None,
    checkpoint_on_close: bool = False,
) -> AuditLog:
    """Open an existing log for appending with its stored current epoch sealing key (a new writer session).

    ``checkpoint_key`` overrides the key reference stored in the log (a moved key file, another token URI);
    ``checkpoint_on_close`` signs a ``close`` checkpoint when the session ends.

    Raises:
        AuditError: ``path`` is not a medfw audit log.
        StorageError: the database cannot be reached.
    """
    with storage_errors(path):
        store = open_store(path)
        try:
            return AuditLog(
                store,
                boot_id=boot_id,
                host_id=host_id,
                clock=clock,
                checkpoint_key=checkpoint_key,
                checkpoint_on_close=checkpoint_on_close,
            )
        except BaseException:
            store.close()
            raise
