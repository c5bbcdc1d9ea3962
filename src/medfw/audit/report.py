"""The result of verifying a log (:class:`VerifyReport`) and the context the verifier builds it in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from medfw.audit.store import LogStore

__all__ = [
    "BAD_CHECKPOINT_SIGNATURE",
    "CLASSIFICATIONS",
    "COUNTER_RESET",
    "DELETED",
    "DUPLICATE",
    "EDITED",
    "FORKED",
    "INSERTED",
    "REORDERED",
    "STORAGE_DAMAGED",
    "TRUNCATED",
    "WRONG_EPOCH_KEY",
    "WRONG_KEY",
    "Run",
    "VerifyReport",
]

#: what went wrong, as a report names it (:mod:`medfw.audit.classify` tells which one it was)
EDITED = "edited"
DELETED = "deleted"
REORDERED = "reordered"
INSERTED = "inserted"
TRUNCATED = "truncated"
FORKED = "forked"
WRONG_EPOCH_KEY = "wrong_epoch_key"
WRONG_KEY = "wrong_key"
BAD_CHECKPOINT_SIGNATURE = "bad_checkpoint_signature"
DUPLICATE = "duplicate"
COUNTER_RESET = "counter_reset"
STORAGE_DAMAGED = "storage_damaged"
CLASSIFICATIONS = frozenset(
    {
        EDITED,
        DELETED,
        REORDERED,
        INSERTED,
        TRUNCATED,
        FORKED,
        WRONG_EPOCH_KEY,
        WRONG_KEY,
        BAD_CHECKPOINT_SIGNATURE,
        DUPLICATE,
        COUNTER_RESET,
        STORAGE_DAMAGED,
    }
)


class VerifyReport(NamedTuple):
    """The outcome of :func:`verify_log` (a named tuple: the verifier loads no :mod:`dataclasses`).

    Attributes:
        ok: the log is intact (and consistent with the checkpoint, if one was given).
        log_id: the log's id.
        location: the log's path or (redacted) URL.
        entries: entries stored.
        verified: leading entries that verified (seqs ``0 .. verified-1``).
        first_bad_seq: the first seq that is wrong or missing (None when ok, or when no single seq is at fault).
        classification: one of :data:`CLASSIFICATIONS` (None when ok).
        message: one sentence for people.
        root: hex Merkle root over the verified entries.
        last_epoch: key epoch of the last verified entry.
        checkpoint_size: size of the largest checkpoint held by the verifier (given or witnessed), if any.
        stored_checkpoints: how many of the log's own checkpoints were checked.
        bad_checkpoint: the size of the first checkpoint (held or stored) that failed, when one did.
        torn_tail: the last write was incomplete and never committed (reported, not counted, not tampering).
        warnings: other observations.
    """

    ok: bool
    log_id: str
    location: str
    entries: int
    verified: int
    first_bad_seq: int | None = None
    classification: str | None = None
    message: str = ""
    root: str | None = None
    last_epoch: int | None = None
    checkpoint_size: int | None = None
    stored_checkpoints: int = 0
    torn_tail: bool = False
    bad_checkpoint: int | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        d = self._asdict()
        d["warnings"] = list(self.warnings)
        return d


class Run:
    """What the verifier carries between its steps: the store, counts, warnings and report fields so far."""

    __slots__ = ("extra", "log_id", "store", "total", "warnings")

    def __init__(self, store: LogStore, log_id: str, total: int | None) -> None:
        self.store = store
        self.log_id = log_id
        self.total = total
        self.warnings: list[str] = []
        self.extra: dict[str, Any] = {}

    def report(self, **kw: Any) -> VerifyReport:
        """The report with the fields gathered so far, updated by ``kw``."""
        if self.total is None:
            self.total = self.store.count()
        args = {**self.extra, **kw}
        return VerifyReport(
            log_id=self.log_id, location=self.store.label, entries=self.total, warnings=tuple(self.warnings), **args
        )
