"""The small interface through which every part of medfw records audit events.

Producers (signing, device, OTA, vulnerability decisions, key lifecycle) build an :class:`AuditEvent` and hand
it to an :class:`AuditSink`. They never depend on how the log is stored or sealed. :class:`NullSink` drops
events; :class:`MemorySink` keeps them in a list (tests, and devices that flush to a log later).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["AuditEvent", "AuditSink", "Checkpointing", "MemorySink", "NullSink", "release_point"]


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened, before it is sealed into a log.

    Attributes:
        type: event type from the controlled vocabulary (``boot.verify``, ``ota.install``, …).
        outcome: ``success``, ``failure`` or ``denied`` (or ``info``).
        reason: a short machine-readable reason code (``bad_signature``, ``rollback``, …).
        actor: who or what acted (``bootloader``, ``agent``, ``user:alice``, a key id).
        objects: digests or identifiers of what was acted on (``{"image_sha256": "…"}``).
        data: extra detail, JSON-serialisable; never key material or secrets.
    """

    type: str
    outcome: str
    reason: str | None = None
    actor: str | None = None
    objects: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class AuditSink(Protocol):
    """Anything that accepts audit events."""

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` durably (or drop it, for :class:`NullSink`)."""


@runtime_checkable
class Checkpointing(Protocol):
    """A sink that can sign a checkpoint of what it holds (an audit log)."""

    def checkpoint(self, reason: str = "request") -> Any:
        """Sign and store a checkpoint; return it."""


def release_point(sink: AuditSink, reason: str = "release") -> Any:
    """Mark a release point (evidence build, OTA publish): a sink that is a log signs a checkpoint now.

    Returns the signed checkpoint, or None for sinks that keep nothing to checkpoint.

    Raises:
        MedfwError: the log's checkpoint key is unavailable (the events are recorded regardless).
    """
    if isinstance(sink, Checkpointing):
        return sink.checkpoint(reason)
    return None


class NullSink:
    """A sink that drops every event."""

    def record(self, event: AuditEvent) -> None:
        """Drop ``event``."""


class MemorySink:
    """A sink that keeps events in memory, in order."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        """Keep ``event``."""
        self.events.append(event)

    def of_type(self, type_: str) -> list[AuditEvent]:
        """Return the events of one type."""
        return [e for e in self.events if e.type == type_]
