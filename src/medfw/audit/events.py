"""Events handed over as JSON Lines (``medfw audit append --events FILE``): one object per line.

Each line is ``{"type": ..., "outcome": ..., "reason"?: str, "actor"?: str, "objects"?: {str: str},
"data"?: {...}}``; anything else is refused with the line number, before anything is sealed.
"""

from __future__ import annotations

import json
from typing import Any

from medfw.audit.sink import AuditEvent
from medfw.audit.vocabulary import check_event_type, check_outcome
from medfw.errors import AuditError

__all__ = ["MAX_EVENTS", "parse_events"]

MAX_EVENTS = 100_000
_FIELDS = frozenset({"type", "outcome", "reason", "actor", "objects", "data"})


def _event(doc: Any, where: str) -> AuditEvent:
    if not isinstance(doc, dict):
        raise AuditError(f"{where}: not a JSON object", field="events")
    unknown = set(doc) - _FIELDS
    if unknown:
        raise AuditError(f"{where}: unknown member(s) {', '.join(sorted(unknown))}", field="events")
    try:
        type_, outcome = check_event_type(str(doc["type"])), check_outcome(str(doc["outcome"]))
    except KeyError as e:
        raise AuditError(f"{where}: missing {e.args[0]!r}", field="events") from None
    except AuditError as e:
        raise AuditError(f"{where}: {e.message}", field=e.field) from None
    for name in ("reason", "actor"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            raise AuditError(f"{where}: {name} must be a string", field=name)
    objects, data = doc.get("objects", {}), doc.get("data", {})
    if not isinstance(objects, dict) or not all(isinstance(v, str) for v in objects.values()):
        raise AuditError(f"{where}: objects must map names to strings", field="objects")
    if not isinstance(data, dict):
        raise AuditError(f"{where}: data must be a JSON object", field="data")
    return AuditEvent(
        type=type_, outcome=outcome, reason=doc.get("reason"), actor=doc.get("actor"), objects=objects, data=data
    )


def parse_events(text: bytes, *, path: str | None = None) -> list[AuditEvent]:
    """Parse JSON Lines of events (blank lines are skipped).

    Raises:
        AuditError: a line is not an event (the message names the line), or there are none or too many.
    """
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise AuditError("events are not UTF-8", path=path, offset=e.start) from None
    events: list[AuditEvent] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as e:
            raise AuditError(f"line {n}: not JSON ({e})", path=path, field="events") from None
        try:
            events.append(_event(doc, f"line {n}"))
        except AuditError as e:
            raise AuditError(e.message, path=path, field=e.field) from None
        if len(events) > MAX_EVENTS:
            raise AuditError(f"more than {MAX_EVENTS} events in one session", path=path, field="events")
    if not events:
        raise AuditError("no events given", path=path, field="events")
    return events
