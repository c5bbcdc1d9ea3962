"""The refusals of the device-trust service, as the fleet server's domain errors (one place to adapt)."""

from __future__ import annotations

from medfw.server.service import ApiError

__all__ = ["conflict", "forbidden", "invalid", "not_found", "unauthorized"]


def unauthorized(message: str) -> ApiError:
    """401: no or a refused credential (certificate, claims)."""
    return ApiError(401, message)


def forbidden(message: str) -> ApiError:
    """403: authenticated, but not allowed (held enrollment, claims of another device)."""
    return ApiError(403, message)


def not_found(message: str) -> ApiError:
    """404."""
    return ApiError(404, message)


def conflict(message: str, field: str | None = None) -> ApiError:
    """409: contradicts the stored state (replayed claims, a forked trail)."""
    return ApiError(409, message, field=field)


def invalid(message: str, field: str | None = None) -> ApiError:
    """422: malformed or out of range."""
    return ApiError(422, message, field=field)
