"""The refusals of the device-trust service, as the fleet server's domain errors (:mod:`medfw.server.errors`)."""

from __future__ import annotations

from medfw.server.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized

__all__ = ["conflict", "forbidden", "invalid", "not_found", "unauthorized"]


def unauthorized(message: str) -> Unauthorized:
    """401: no or a refused credential (certificate)."""
    return Unauthorized(message)


def forbidden(message: str) -> Forbidden:
    """403: authenticated, but not allowed (held enrollment, refused claims)."""
    return Forbidden(message)


def not_found(message: str) -> NotFound:
    """404."""
    return NotFound(message)


def conflict(message: str, field: str | None = None) -> Conflict:
    """409: contradicts the stored state (replayed claims, a forked trail)."""
    return Conflict(message, field=field)


def invalid(message: str, field: str | None = None) -> Invalid:
    """422: malformed or out of range."""
    return Invalid(message, field=field)
