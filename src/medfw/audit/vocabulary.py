"""The controlled vocabulary of audit event types and outcomes.

Every entry in a log carries one of :data:`EVENT_TYPES` and one of :data:`OUTCOMES`; anything else is rejected
before it is sealed, so that auditors can rely on a closed set of codes (IEC 62443-4-2 CR 2.8 asks for an event
category, type and result on every record).
"""

from __future__ import annotations

import enum

from medfw.errors import AuditError

__all__ = ["EVENT_TYPES", "OUTCOMES", "Outcome", "check_event_type", "check_outcome"]

EVENT_TYPES: frozenset[str] = frozenset(
    {
        # boot chain
        "boot.verify",
        "boot.select",
        "boot.revert",
        "boot.refused",
        # over-the-air update
        "ota.manifest.rejected",
        "ota.download",
        "ota.install",
        "ota.install.rejected",
        "ota.confirm",
        "ota.revert",
        "ota.report",
        # anti-rollback and device security configuration
        "security.svn.increment",
        "config.change",
        "efuse.burn",
        # keys
        "key.generate",
        "key.rotate",
        "key.revoke",
        "key.sign",
        "key.approve",
        # vulnerability management
        "vuln.decision",
        "vuln.scan",
        "vuln.feed.sync",
        "vuln.feed.import",
        "vuln.rescan",
        "vuln.alert",
        "vuln.release",
        # release pipeline and fleet
        "release.sign",
        "release.publish",
        "release.document",
        "rollout.change",
        "device.register",
        "sbom.generate",
        "evidence.build",
        # the log itself
        "audit.init",
        "audit.checkpoint",
        "audit.export",
        "audit.migrate",
    }
)


class Outcome(enum.StrEnum):
    """The result of an audited action."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    INFO = "info"


OUTCOMES: frozenset[str] = frozenset(Outcome)


def check_event_type(value: str) -> str:
    """Return ``value`` if it is a known event type.

    Raises:
        AuditError: the type is not in :data:`EVENT_TYPES`.
    """
    if value not in EVENT_TYPES:
        raise AuditError(f"unknown audit event type {value!r} (known: {', '.join(sorted(EVENT_TYPES))})", field="type")
    return value


def check_outcome(value: str) -> str:
    """Return ``value`` if it is a known outcome.

    Raises:
        AuditError: the outcome is not in :data:`OUTCOMES`.
    """
    if value not in OUTCOMES:
        raise AuditError(f"unknown audit outcome {value!r} (known: {', '.join(sorted(OUTCOMES))})", field="outcome")
    return value
