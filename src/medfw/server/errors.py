"""Domain errors of the fleet service; :mod:`medfw.server.http` maps them to HTTP statuses in one place.

The service never speaks HTTP: it raises one of these and the web layer picks the status.
"""

from __future__ import annotations

from medfw.errors import InputError, PolicyViolationError, StorageError

__all__ = ["Conflict", "Forbidden", "Invalid", "NotFound", "ServiceError", "Throttled", "Unauthorized", "Unavailable"]


class ServiceError(InputError):
    """A request the fleet service refuses (the message is safe to show to the caller)."""


class NotFound(ServiceError):  # noqa: N818 - named after the HTTP refusal
    """The named object does not exist (HTTP 404)."""


class Conflict(ServiceError):  # noqa: N818 - named after the HTTP refusal
    """The request contradicts the current state: an existing name or id, a busy device (HTTP 409)."""


class Invalid(ServiceError):  # noqa: N818 - named after the HTTP refusal
    """A value is out of range or malformed (HTTP 422); ``field`` names it."""


class Unauthorized(ServiceError):  # noqa: N818 - named after the HTTP refusal
    """A missing, wrong or expired credential or token (HTTP 401)."""


class Forbidden(PolicyViolationError):  # noqa: N818 - named after the HTTP refusal
    """An authenticated caller may not do this: a role too low, a device acting for another (HTTP 403)."""


class Throttled(ServiceError):  # noqa: N818 - named after the HTTP refusal
    """Too many refused authentications from this source or for this device (HTTP 429 with ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(StorageError):  # noqa: N818 - named after the HTTP refusal
    """The database cannot be reached (HTTP 503 with ``Retry-After``)."""
