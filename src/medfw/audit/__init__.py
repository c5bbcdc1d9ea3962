"""Tamper-evident audit trail."""

from __future__ import annotations

from pathlib import Path

from medfw.audit.sink import AuditEvent, AuditSink, MemorySink, NullSink

__all__ = ["AuditEvent", "AuditSink", "MemorySink", "NullSink", "open_log"]


def open_log(path: str | Path) -> AuditSink:
    """Open an existing audit log for appending (placeholder until the log store lands)."""
    raise NotImplementedError(str(path))
