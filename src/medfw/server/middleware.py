"""ASGI middleware of the fleet server: the request body limit and the fast path for polls."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from medfw.errors import MedfwError
from medfw.server.validation import check_reported

if TYPE_CHECKING:
    from medfw.server.service import FleetService

__all__ = ["ASGIApp", "BodyLimit", "FastPoll", "replay", "send_json", "set_actor"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def set_actor(scope: Scope, actor: str) -> None:
    """Record who a request is from (the request log line names it; never a secret)."""
    state = scope.setdefault("state", {})
    state["actor"] = actor


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with 413, by Content-Length or while reading a chunked body.

    Bodies of requests other than GET/HEAD are read here first (at most ``limit`` bytes are ever buffered) and
    handed to the application only when complete and small enough. Paths matching ``exempt`` are passed through:
    their routes authenticate first and then read the body themselves under a limit of their own.
    """

    def __init__(self, app: ASGIApp, limit: int, exempt: str | None = None) -> None:
        self.app = app
        self.limit = limit
        self.exempt = re.compile(exempt) if exempt else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        passes = self.exempt is not None and scope["type"] == "http" and self.exempt.match(scope["path"])
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD") or passes:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await send_json(send, 413, f"request body larger than {self.limit} bytes")
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, replay([message], receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await send_json(send, 413, f"request body larger than {self.limit} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, replay([whole], receive), send)


def replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first hands out ``messages`` (a body read ahead)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


_POLL_PATH = re.compile(r"^/api/v1/devices/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/poll$")
_POLL_PARAMS = frozenset({"version", "secure_version", "slot"})


class FastPoll:
    """Serve well-formed, authenticated polls without FastAPI's per-request dependency resolution.

    Polls are most of the traffic. This path handles exactly the requests the documented ``GET …/poll`` route
    would answer with 200/304 — same checks, same answer, same ETag; anything else (a malformed query, a missing
    or wrong credential, a device acting for another) falls through to that route, which answers and audits it.
    """

    def __init__(self, app: ASGIApp, service: FleetService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            m = _POLL_PATH.match(scope["path"])
            if m is not None:
                try:
                    served = await self._serve(m.group(1), scope, send)
                except (MedfwError, SQLAlchemyError):
                    served = False  # the route answers (and maps) the same refusal
                if served:
                    return
        await self.app(scope, receive, send)

    async def _serve(self, device_id: str, scope: Scope, send: Send) -> bool:
        auth = etag_in = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value.decode("latin-1")
            elif name == b"if-none-match":
                etag_in = value.decode("latin-1").strip()
        if auth is None or not auth.startswith("Device "):
            return False
        try:
            params = parse_qs(scope["query_string"].decode("ascii"), strict_parsing=False, keep_blank_values=True)
        except UnicodeDecodeError:
            return False
        if not params.keys() <= _POLL_PARAMS or any(len(v) != 1 for v in params.values()):
            return False
        try:
            version, svn, slot = check_reported(
                params.get("version", [None])[0], params.get("secure_version", [None])[0], params.get("slot", [None])[0]
            )
        except ValueError:
            return False  # the route answers 422 naming the field
        credential = auth[len("Device ") :].strip()
        service = self.service
        client = scope.get("client")
        if service.limiter.blocked(f"ip:{client[0] if client else 'unknown'}", f"device:{device_id}") is not None:
            return False  # the route answers 429
        found = service.authenticate_device_cached(credential)
        # a first sight of a device, or a poll whose answer is not cached, reads the database: in a thread, so a
        # slow database (or SQLite's write lock) never stalls the event loop
        who = await run_in_threadpool(service.authenticate_device, credential) if found is False else found
        if who != device_id:
            return False
        set_actor(scope, f"device:{device_id}")
        result = service.poll_cached(device_id, version=version, secure_version=svn, slot=slot)
        if result is None:
            result = await run_in_threadpool(service.poll, device_id, version=version, secure_version=svn, slot=slot)
        etag = result.etag.encode()
        if etag_in == result.etag:
            await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", etag)]})
            await send({"type": "http.response.body", "body": b""})
            return True
        body = json.dumps(result.body, separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"etag", etag),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True


async def send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
