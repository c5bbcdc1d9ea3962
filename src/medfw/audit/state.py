"""The log writer's persisted state and the small definitions shared by the writer and log creation."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from medfw.audit.keys import KDF_HKDF, KEY_SIZE, check_kdf
from medfw.audit.merkle import CompactRange
from medfw.audit.store import LogStore
from medfw.errors import AuditError

__all__ = [
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_EPOCH_LENGTH",
    "LOG_FORMAT",
    "LOG_FORMATS",
    "Clock",
    "SealedEntry",
    "WriterState",
    "format_ts",
    "log_kdf",
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


@dataclass
class WriterState:
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
    def from_bytes(cls, data: bytes, *, path: str) -> WriterState:
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


def log_kdf(store: LogStore) -> str:
    """The key derivation of the log in ``store`` (format 1 logs predate the choice and use HKDF).

    Raises:
        AuditError: the log names an unknown derivation.
    """
    raw = store.get_meta("kdf")
    return KDF_HKDF if raw is None else check_kdf(raw.decode("utf-8", "replace"), path=store.label)
