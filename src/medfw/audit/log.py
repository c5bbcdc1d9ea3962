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
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from medfw._io import atomic_write
from medfw.audit.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from medfw.audit.ckeys import generate_checkpoint_key, key_id, load_checkpoint_public_key
from medfw.audit.keys import (
    KDF_HKDF,
    KDF_RATCHET,
    KEY_SIZE,
    VerificationKey,
    check_kdf,
    key_check_value,
    mac_key,
    next_epoch_key,
    seal_tag,
)
from medfw.audit.merkle import CompactRange
from medfw.audit.record import GENESIS_PREV, RECORD_VERSION, encode_record, entry_hash
from medfw.audit.signing import CheckpointSigner, check_reference, create_key_file, is_pkcs11, open_signer
from medfw.audit.sink import AuditEvent
from medfw.audit.store import LogStore, SqliteStore, is_url, open_store, storage_errors
from medfw.audit.vocabulary import check_event_type, check_outcome
from medfw.errors import AuditError, MedfwError

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

LOG_FORMAT = b"medfw-audit-log/2"
LOG_FORMATS = (b"medfw-audit-log/1", LOG_FORMAT)
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
    checkpoint_key: str = ""


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
        self._batch_state: _State | None = None
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

    def _load_state(self) -> _State:
        st = _State.from_bytes(self._meta("state"), path=self.location)
        st.mac = mac_key(st.key, self.log_id, st.epoch, self.kdf)
        return st

    def _save_state(self, st: _State) -> None:
        self._store.put_meta("state", st.to_bytes())

    def _rotate_if_used(self, st: _State) -> bool:
        if st.used == 0:
            return False
        st.key = next_epoch_key(st.key, self.log_id, st.epoch, self.kdf)
        st.epoch += 1
        st.used = 0
        st.mac = mac_key(st.key, self.log_id, st.epoch, self.kdf)
        self._dirty = False
        return True

    def _begin(self, st: _State) -> None:
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
    def _tx(self) -> Iterator[_State]:
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
    def _seal(self, st: _State, event: AuditEvent) -> SealedEntry:
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

    def _append_in_tx(self, st: _State, event: AuditEvent) -> SealedEntry:
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

    def _checkpoint_in_tx(self, st: _State, reason: str, signer: Any) -> SignedCheckpoint:
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


def log_kdf(store: LogStore) -> str:
    """The key derivation of the log in ``store`` (format 1 logs predate the choice and use HKDF).

    Raises:
        AuditError: the log names an unknown derivation.
    """
    raw = store.get_meta("kdf")
    return KDF_HKDF if raw is None else check_kdf(raw.decode("utf-8", "replace"), path=store.label)


def _checkpoint_signer(
    path: str | Path, checkpoint_key: str | None, checkpoint_key_out: str | Path | None, kind: str
) -> tuple[CheckpointSigner, Path | None]:
    """Open the given checkpoint key, or generate one into its own 0600 file (default ``LOG.ckey``)."""
    if checkpoint_key is not None:
        if checkpoint_key_out is not None:
            raise AuditError("give either an existing checkpoint key or where to create one", field="checkpoint_key")
        signer = open_signer(check_reference(checkpoint_key))
        if not is_pkcs11(checkpoint_key):
            signer = dataclasses.replace(signer, reference=str(Path(signer.reference).resolve()))
        return signer, None
    if checkpoint_key_out is None:
        if is_url(path):
            raise AuditError(
                "a PostgreSQL log needs a checkpoint key file or pkcs11: URI (it is never stored in the log)",
                field="checkpoint_key",
            )
        checkpoint_key_out = str(path) + ".ckey"
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
    if epoch_length < 1 or checkpoint_interval < 1:
        raise AuditError("epoch_length and checkpoint_interval must be at least 1", field="epoch_length")
    log_id = log_id or uuid.uuid4().hex
    if not log_id.isprintable() or len(log_id) > 128:
        raise AuditError("log id must be printable and at most 128 characters", field="log_id")
    host = host_id if host_id is not None else socket.gethostname()
    if initial_key is not None and len(initial_key) != KEY_SIZE:
        raise AuditError(f"initial key must be {KEY_SIZE} bytes", field="initial_key")
    initial = initial_key if initial_key is not None else os.urandom(KEY_SIZE)
    if checkpoint_key is None:
        generate_checkpoint_key(checkpoint_key_type)  # reject an unknown type before anything is written
    store = open_store(path, create=True)
    written: list[Path] = []
    try:
        signer, created = _checkpoint_signer(path, checkpoint_key, checkpoint_key_out, checkpoint_key_type)
        if created is not None:
            written.append(created)
        pub_pem = signer.public_pem()
        vk = VerificationKey(log_id=log_id, initial_key=initial, checkpoint_public_key_pem=pub_pem, kdf=check_kdf(kdf))
        key_path = Path(key_out) if key_out is not None else None
        if key_path is not None:
            atomic_write(key_path, vk.to_bytes(), mode=0o600, overwrite=False)
            written.append(key_path)
        _create(
            store,
            vk,
            signer,
            host=host,
            epoch_length=epoch_length,
            checkpoint_interval=checkpoint_interval,
            clock=clock,
        )
        store.after_epoch_change()
    except BaseException:
        store.close()
        if isinstance(store, SqliteStore) and not is_url(path):
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(str(path) + suffix).unlink()
        for p in written:
            with contextlib.suppress(OSError):
                p.unlink()
        raise
    store.close()
    return InitResult(
        log_id=log_id,
        location=store.label,
        verification_key=vk,
        key_path=key_path,
        checkpoint_key_id=key_id(signer.public_key),
        checkpoint_key=signer.reference,
    )


def _create(
    store: LogStore,
    vk: VerificationKey,
    signer: CheckpointSigner,
    *,
    host: str,
    epoch_length: int,
    checkpoint_interval: int,
    clock: Clock | None,
) -> None:
    meta = {
        "format": LOG_FORMAT if vk.kdf == KDF_RATCHET else LOG_FORMATS[0],
        "log_id": vk.log_id.encode(),
        "host_id": host.encode(),
        "config": json.dumps({"epoch_length": epoch_length, "checkpoint_interval": checkpoint_interval}).encode(),
        "kcv": key_check_value(vk.initial_key, vk.log_id),
        "checkpoint_key": signer.reference.encode("utf-8"),
        "checkpoint_public_key": vk.checkpoint_public_key_pem,
    }
    if vk.kdf != KDF_HKDF:
        meta["kdf"] = vk.kdf.encode()
    st = _State(
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
            "epoch_length": epoch_length,
            "checkpoint_interval": checkpoint_interval,
            "checkpoint_key_id": key_id(signer.public_key),
            "checkpoint_key": "pkcs11" if is_pkcs11(signer.reference) else "file",
            "kdf": vk.kdf,
            "format": meta["format"].decode(),
        }
        log._session_started = True
        log._seal(st, AuditEvent(type="audit.init", outcome="success", actor="audit", data=data))
        log._rotate_if_used(st)  # the initial key never stays in the log
        log._save_state(st)


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
