"""A small client of the fleet server's management API (used by ``medfw ota`` operator commands)."""

from __future__ import annotations

import os
from typing import Any

import httpx

from medfw.errors import InputError, PolicyViolationError, TransportError, UsageError

__all__ = ["FleetClient"]


def _verify() -> Any:
    """The CA bundle of ``MEDFW_OTA_CA`` (a private CA for the fleet server), else the system's."""
    ca = os.environ.get("MEDFW_OTA_CA")
    if not ca:
        return True
    import ssl  # noqa: PLC0415

    return ssl.create_default_context(cafile=ca)


class FleetClient:
    """Management API calls with a bearer token; errors become medfw errors carrying the server's reason.

    Args:
        server: base URL (``http://127.0.0.1:8080``).
        token: a management API token.
        client: an ``httpx.Client`` to use instead of a new one (tests, custom transports).
    """

    def __init__(self, server: str, token: str, *, client: httpx.Client | None = None, timeout: float = 30.0) -> None:
        if not server.startswith(("http://", "https://")):
            raise UsageError("server URL must start with http:// or https://", field="--server")
        self.server = server.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout, verify=_verify())
        self._headers = {"Authorization": f"Bearer {token}"}

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
    ) -> Any:
        """Send one request (a JSON body, or raw ``content``) and return the decoded JSON answer.

        Raises:
            TransportError: the server cannot be reached.
            PolicyViolationError: 401/403 (bad token, or a role that may not do this).
            InputError: any other 4xx/5xx, with the server's reason.
        """
        url = self.server + path
        headers = self._headers if content is None else {**self._headers, "Content-Type": "application/octet-stream"}
        try:
            r = self._client.request(method, url, json=json, params=params, content=content, headers=headers)
        except httpx.HTTPError as e:
            raise TransportError(f"cannot reach the fleet server: {e.__class__.__name__}", path=url) from None
        if r.status_code == 204:
            return None
        try:
            body = r.json()
        except ValueError:
            body = {"detail": r.text[:300]}
        if r.status_code >= 400:
            detail = body.get("detail", "") if isinstance(body, dict) else str(body)
            message = f"server refused ({r.status_code}): {detail}"
            if r.status_code in (401, 403):
                raise PolicyViolationError(message, path=url)
            raise InputError(message, path=url)
        return body
