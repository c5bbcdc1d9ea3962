"""The log writer: create a log, open it, append sealed entries, make signed checkpoints.

Contract:

* :func:`init_log` creates a log and returns the verification key (initial sealing key + checkpoint public
  key) that the user keeps offline; the log itself only ever stores the *current* epoch key.
* :func:`open_log` opens a log for appending. Opening is a new boot/session: it gets a fresh ``boot_id``,
  increments the persisted boot counter, and moves to a new key epoch if the current one already sealed
  entries. :meth:`AuditLog.record` / :meth:`AuditLog.append` return only after the entry is committed.
* The epoch also advances every ``epoch_length`` entries and after every checkpoint, always *eagerly*: the
  stored key is always for an epoch that sealed no entry yet, or the one still being filled; the key of a
  finished epoch is overwritten in the same transaction that finishes it.
* Checkpoints are made every ``checkpoint_interval`` entries, on :meth:`AuditLog.close`, on request, on export
  and before an update (:meth:`AuditLog.checkpoint` with ``reason="pre-update"``). Each is preceded by an
  ``audit.checkpoint`` entry so that the log records its own checkpoints.

Entry fields: ``seq``, ``epoch``, ``prev`` (chain), and in ``body``: ``v`` (record version), ``type``,
``outcome``, ``reason``, ``actor``, ``objects`` (digests), ``data``, ``ts`` (UTC), ``mono_ns`` (monotonic
clock, decimal string), ``boot_id``, ``boot_n`` (persisted boot counter) and ``host`` (device/host id).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from medfw._io import atomic_write
from medfw.audit.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from medfw.audit.keys import (
    KEY_SIZE,
    VerificationKey,
    generate_checkpoint_key,
    key_check_value,
    key_id,
    load_checkpoint_private_key,
    mac_key,
    next_epoch_key,
    private_pem,
    public_pem,
    seal_tag,
)
from medfw.audit.merkle import CompactRange
from medfw.audit.record import GENESIS_PREV, RECORD_VERSION, encode_record, entry_hash
from medfw.audit.sink import AuditEvent
from medfw.audit.store import LogStore, SqliteStore, is_url, open_store, storage_errors
from medfw.audit.vocabulary import check_event_type, check_outcome
from medfw.errors import AuditError

__all__ = [
    "LOG_FORMAT",
    "AuditLog",
    "InitResult",
    "SealedEntry",
    "checkpoint",
    "init_log",
    "open_log",
    "utc_now",
]

LOG_FORMAT = b"medfw-audit-log/1"
DEFAULT_EPOCH_LENGTH = 1024
DEFAULT_CHECKPOINT_INTERVAL = 4096

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``.

    Raises:
        AuditError: the clock returned a naive or non-UTC time.
    """
    if ts.tzinfo is None or ts.utcoffset() != UTC.utcoffset(None):
        raise AuditError("audit clock must return UTC-aware datetimes", field="ts")
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class SealedEntry:
    """An entry as committed: its record bytes, hash and tag."""

    seq: int
    epoch: int
    record: bytes
    entry_hash: bytes
    tag: bytes


@dataclass(frozen=True)
class InitResult:
    """What :func:`init_log` produced."""

    log_id: str
    location: str
    verification_key: VerificationKey
    key_path: Path | None
    checkpoint_key_id: str


@dataclass
class _State:
    """The writer state persisted in ``meta['state']`` (holds the current epoch key)."""

    next_seq: int
    prev: str
    epoch: int
    key: bytes
    used: int
    compact: CompactRange
    boot_n: int
    since_checkpoint: int
    mac: bytes = field(default=b"", repr=False)

    def to_bytes(self) -> bytes:
        doc = {
            "next_seq": self.next_seq,
            "prev": self.prev,
            "epoch": self.epoch,
            "key": self.key.hex(),
            "used": self.used,
            "compact": [n.hex() for n in self.compact.nodes],
            "boot_n": self.boot_n,
            "since_checkpoint": self.since_checkpoint,
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, path: str) -> _State:
        try:
            d = json.loads(data)
            st = cls(
                next_seq=int(d["next_seq"]),
                prev=str(d["prev"]),
                epoch=int(d["epoch"]),
                key=bytes.fromhex(d["key"]),
                used=int(d["used"]),
                compact=CompactRange(int(d["next_seq"]), [bytes.fromhex(h) for h in d["compact"]]),
                boot_n=int(d["boot_n"]),
                since_checkpoint=int(d["since_checkpoint"]),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise AuditError(f"audit log writer state is unreadable: {e}", path=path, field="state") from None
        if len(st.key) != KEY_SIZE:
            raise AuditError("audit log writer state holds a malformed key", path=path, field="state")
        return st


class AuditLog:
    """An open audit log (an :class:`medfw.audit.sink.AuditSink`). Use :func:`open_log` to get one."""

    def __init__(
        self,
        store: LogStore,
        *,
        boot_id: str | None = None,
        host_id: str | None = None,
        clock: Clock | None = None,
        new_boot: bool = True,
    ) -> None:
        self._store = store
        self.location = store.label
        fmt = store.get_meta("format")
        if fmt != LOG_FORMAT:
            raise AuditError("not a medfw audit log (format marker missing)", path=self.location, field="format")
        self.log_id = self._meta_text("log_id")
        config = json.loads(self._meta_text("config"))
        self.epoch_length = int(config["epoch_length"])
        self.checkpoint_interval = int(config["checkpoint_interval"])
        self.host_id = host_id if host_id is not None else self._meta_text("host_id")
        self._signing_key = load_checkpoint_private_key(self._meta("checkpoint_private_key"))
        self.checkpoint_public_key_pem = self._meta("checkpoint_public_key")
        self.boot_id = boot_id if boot_id is not None else uuid.uuid4().hex
        self._clock: Clock = clock or utc_now
        self._batch_state: _State | None = None
        self._closed = False
        self._appended_since_checkpoint = False
        if new_boot:
            with self._store.write():
                st = self._load_state()
                st.boot_n += 1
                rotated = self._rotate_if_used(st)
                self._save_state(st)
            if rotated:
                self._store.after_epoch_change()
        self.boot_n = self._load_state().boot_n

    # -- meta helpers -------------------------------------------------------------------------------
    def _meta(self, name: str) -> bytes:
        value = self._store.get_meta(name)
        if value is None:
            raise AuditError(f"audit log has no {name}", path=self.location, field=name)
        return value

    def _meta_text(self, name: str) -> str:
        return self._meta(name).decode("utf-8")

    def _load_state(self) -> _State:
        st = _State.from_bytes(self._meta("state"), path=self.location)
        st.mac = mac_key(st.key, self.log_id, st.epoch)
        return st

    def _save_state(self, st: _State) -> None:
        self._store.put_meta("state", st.to_bytes())

    def _rotate_if_used(self, st: _State) -> bool:
        if st.used == 0:
            return False
        st.key = next_epoch_key(st.key, self.log_id, st.epoch)
        st.epoch += 1
        st.used = 0
        st.mac = mac_key(st.key, self.log_id, st.epoch)
        return True

    # -- appending ----------------------------------------------------------------------------------
    def _seal(self, st: _State, event: AuditEvent) -> tuple[SealedEntry, bool]:
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
            "type": event.type,
            "outcome": event.outcome,
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
        rotated = False
        if st.used >= self.epoch_length:
            rotated = self._rotate_if_used(st)
        return entry, rotated

    def _check_open(self) -> None:
        if self._closed:
            raise AuditError("audit log is closed", path=self.location)

    def append(self, event: AuditEvent) -> SealedEntry:
        """Seal and durably append ``event``; return the committed entry.

        Raises:
            AuditError: unknown event type or outcome, or data that JSON cannot carry.
            StorageError: the commit failed (nothing was appended).
        """
        self._check_open()
        if self._batch_state is not None:
            entry, _ = self._seal(self._batch_state, event)
            if self._batch_state.since_checkpoint >= self.checkpoint_interval:
                self._checkpoint_in_tx(self._batch_state, "interval")
            self._appended_since_checkpoint = True
            return entry
        with self._store.write():
            st = self._load_state()
            entry, rotated = self._seal(st, event)
            if st.since_checkpoint >= self.checkpoint_interval:
                self._checkpoint_in_tx(st, "interval")
                rotated = True
            self._save_state(st)
        if rotated:
            self._store.after_epoch_change()
        self._appended_since_checkpoint = True
        return entry

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` durably (the :class:`~medfw.audit.sink.AuditSink` protocol)."""
        self.append(event)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group appends into one transaction (one fsync); nothing in the group is durable before it ends."""
        self._check_open()
        if self._batch_state is not None:
            raise AuditError("batches do not nest", path=self.location)
        with self._store.write():
            self._batch_state = self._load_state()
            epoch0 = self._batch_state.epoch
            try:
                yield
                self._save_state(self._batch_state)
            finally:
                st, self._batch_state = self._batch_state, None
        if st.epoch != epoch0:
            self._store.after_epoch_change()

    # -- checkpoints --------------------------------------------------------------------------------
    def _checkpoint_in_tx(self, st: _State, reason: str) -> SignedCheckpoint:
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
        signed = sign_checkpoint(cp, self._signing_key)
        self._store.insert_checkpoint(cp.size, signed.to_bytes())
        st.since_checkpoint = 0
        self._rotate_if_used(st)
        self._appended_since_checkpoint = False
        return signed

    def checkpoint(self, reason: str = "request") -> SignedCheckpoint:
        """Append an ``audit.checkpoint`` entry, then sign and store a checkpoint covering it.

        Call with ``reason="pre-update"`` before installing an update, so that a rollback of the log across
        the update is detectable. The epoch key advances afterwards.
        """
        self._check_open()
        if self._batch_state is not None:
            return self._checkpoint_in_tx(self._batch_state, reason)
        with self._store.write():
            st = self._load_state()
            signed = self._checkpoint_in_tx(st, reason)
            self._save_state(st)
        self._store.after_epoch_change()
        return signed

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """Return the most recent stored checkpoint, if any."""
        cps = self._store.checkpoints()
        if not cps:
            return None
        return SignedCheckpoint.from_bytes(cps[-1][1], path=self.location)

    @property
    def size(self) -> int:
        """Number of committed entries."""
        return self._load_state().next_seq

    # -- lifecycle ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Make a ``close`` checkpoint if entries were appended since the last one, and release the store."""
        if self._closed:
            return
        try:
            if self._appended_since_checkpoint:
                self.checkpoint("close")
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
) -> AuditLog:
    """Open an existing log for appending with its stored current epoch sealing key (a new boot/session).

    Raises:
        AuditError: ``path`` is not a medfw audit log.
        StorageError: the database cannot be reached.
    """
    with storage_errors(path):
        store = open_store(path)
        try:
            return AuditLog(store, boot_id=boot_id, host_id=host_id, clock=clock)
        except BaseException:
            store.close()
            raise


def init_log(
    path: str | Path,
    *,
    log_id: str | None = None,
    key_out: str | Path | None = None,
    host_id: str | None = None,
    epoch_length: int = DEFAULT_EPOCH_LENGTH,
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL,
    checkpoint_key_type: str = "ed25519",
    clock: Clock | None = None,
    initial_key: bytes | None = None,
) -> InitResult:
    """Create a log: the ``audit.init`` entry sealed with the initial key, after which the key ratchets.

    The verification key (initial sealing key + checkpoint public key) is returned and, with ``key_out``,
    written there with mode 0600 before the log is created. Keep it offline: whoever holds it can forge
    entries of every epoch. ``initial_key`` (32 bytes) replaces the random initial key when the verifier derives
    it itself (a device log sealed with a key derived at provisioning).

    Raises:
        AuditError: a log exists at ``path``, ``key_out`` exists, or a parameter is out of range.
        StorageError: the log or key cannot be written.
    """
    if epoch_length < 1 or checkpoint_interval < 1:
        raise AuditError("epoch_length and checkpoint_interval must be at least 1", field="epoch_length")
    log_id = log_id or uuid.uuid4().hex
    if not log_id.isprintable() or len(log_id) > 128:
        raise AuditError("log id must be printable and at most 128 characters", field="log_id")
    host = host_id if host_id is not None else socket.gethostname()
    if initial_key is not None and len(initial_key) != KEY_SIZE:
        raise AuditError(f"initial key must be {KEY_SIZE} bytes", field="initial_key")
    initial = initial_key if initial_key is not None else os.urandom(KEY_SIZE)
    signing = generate_checkpoint_key(checkpoint_key_type)
    pub_pem = public_pem(signing.public_key())
    vk = VerificationKey(log_id=log_id, initial_key=initial, checkpoint_public_key_pem=pub_pem)
    key_path = Path(key_out) if key_out is not None else None
    store = open_store(path, create=True)
    wrote_key = False
    try:
        if key_path is not None:
            atomic_write(key_path, vk.to_bytes(), mode=0o600, overwrite=False)
            wrote_key = True
        meta = {
            "format": LOG_FORMAT,
            "log_id": log_id.encode(),
            "host_id": host.encode(),
            "config": json.dumps({"epoch_length": epoch_length, "checkpoint_interval": checkpoint_interval}).encode(),
            "kcv": key_check_value(initial, log_id),
            "checkpoint_private_key": private_pem(signing),
            "checkpoint_public_key": pub_pem,
        }
        st = _State(
            next_seq=0,
            prev=GENESIS_PREV,
            epoch=0,
            key=initial,
            used=0,
            compact=CompactRange(),
            boot_n=0,
            since_checkpoint=0,
        )
        with store.write(initial=True):
            store.create(meta)
            log = AuditLog.__new__(AuditLog)
            log._store = store
            log.location = store.label
            log.log_id = log_id
            log.epoch_length = epoch_length
            log.checkpoint_interval = checkpoint_interval
            log.host_id = host
            log.boot_id = uuid.uuid4().hex
            log._clock = clock or utc_now
            st.mac = mac_key(initial, log_id, 0)
            data = {
                "epoch_length": epoch_length,
                "checkpoint_interval": checkpoint_interval,
                "checkpoint_key_id": key_id(signing.public_key()),
                "format": LOG_FORMAT.decode(),
            }
            log._seal(st, AuditEvent(type="audit.init", outcome="success", actor="audit", data=data))
            log._rotate_if_used(st)  # the initial key never stays in the log
            log._save_state(st)
        store.after_epoch_change()
    except BaseException:
        store.close()
        if isinstance(store, SqliteStore) and not is_url(path):
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(str(path) + suffix).unlink()
        if wrote_key and key_path is not None:
            with contextlib.suppress(OSError):
                key_path.unlink()
        raise
    store.close()
    return InitResult(
        log_id=log_id,
        location=store.label,
        verification_key=vk,
        key_path=key_path,
        checkpoint_key_id=key_id(signing.public_key()),
    )


def checkpoint(path: str | Path, *, reason: str = "request", out: str | Path | None = None) -> SignedCheckpoint:
    """Open the log at ``path``, make a checkpoint, optionally write it to ``out``, and return it."""
    log = open_log(path)
    try:
        signed = log.checkpoint(reason)
    finally:
        log.close()
    if out is not None:
        atomic_write(out, signed.to_bytes())
    return signed
