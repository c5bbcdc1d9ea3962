"""The fast path of device reports: well-formed, authenticated reports served without FastAPI's per-request
routing, dependency resolution and response validation (reports are the write load of a rollout).

It handles exactly the requests the documented ``POST …/reports`` route would accept — the same checks, the same
service call (:func:`medfw.server.routers.device.store_report`), the same answer. Anything else (a malformed body,
a credential not in the cache, a device acting for another, a throttled source, a client certificate) falls
through to that route, which answers and audits it. Once a report is being stored, an error is answered here with
the route's mapping (:func:`medfw.server.http.answer_for`), never passed on: nothing is stored twice.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from medfw.errors import MedfwError
from medfw.identity.tls import client_certificate
from medfw.server import schemas
from medfw.server.http import answer_for
from medfw.server.middleware import ASGIApp, Message, Receive, Scope, Send, replay, set_actor
from medfw.server.routers.device import store_report
from medfw.server.service import FleetService

__all__ = ["FastReport"]

_REPORT_PATH = re.compile(r"^/api/v1/devices/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/reports$")


class FastReport:
    """Serve well-formed, authenticated device reports in front of FastAPI (see the module docstring)."""

    def __init__(self, app: ASGIApp, service: FleetService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("query_string"):
            m = _REPORT_PATH.match(scope["path"])
            if m is not None:
                message = await receive()
                try:
                    accepted = self._accepted(m.group(1), scope, message)
                except (MedfwError, SQLAlchemyError):
                    accepted = None  # (nothing stored yet) the route answers and maps the same refusal
                if accepted is not None:
                    await self._serve(accepted[0], accepted[1], scope, receive, send)
                    return
                receive = replay([message], receive)
        await self.app(scope, receive, send)

    def _accepted(self, device_id: str, scope: Scope, message: Message) -> tuple[str, schemas.ReportIn] | None:
        """The authenticated device and its report, when the route would accept them as they are."""
        if message.get("type") != "http.request" or message.get("more_body", False):
            return None
        auth = ctype = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value.decode("latin-1")
            elif name == b"content-type":
                ctype = value.decode("latin-1")
        if auth is None or not auth.startswith("Device ") or client_certificate(scope) is not None:
            return None
        if ctype is None or ctype.split(";")[0].strip().lower() != "application/json":
            return None
        client = scope.get("client")
        service = self.service
        if service.limiter.blocked(f"ip:{client[0] if client else 'unknown'}", f"device:{device_id}") is not None:
            return None  # the route answers 429
        if service.authenticate_device_cached(auth[len("Device ") :].strip()) != device_id:
            return None  # not cached, refused, or another device: the route reads, refuses and audits
        try:
            body = schemas.ReportIn.model_validate(json.loads(message.get("body", b"")))
        except (ValueError, ValidationError):
            return None  # the route answers 422 naming the field
        return device_id, body

    async def _serve(self, who: str, body: schemas.ReportIn, scope: Scope, receive: Receive, send: Send) -> None:
        set_actor(scope, f"device:{who}")
        try:
            ack = await run_in_threadpool(store_report, self.service, who, body)
        except Exception as e:  # the route's mapping (the report is not passed on: it may be stored already)
            await answer_for(e, scope["method"], scope["path"])(scope, receive, send)
            return
        payload = {"device": ack.device, "status": ack.status, "accepted": ack.accepted}
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})
