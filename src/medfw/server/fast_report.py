"""The fast path of device reports: well-formed, authenticated reports served without FastAPI's per-request
routing, dependency resolution and response validation (reports are the write load of a rollout).

It handles exactly the requests the documented ``POST …/reports`` route would accept — the same checks, the same
service call (:func:`medfw.server.routers.device.store_report`), the same answer. Anything else (a malformed body,
a credential not in the cache, a device acting for another, a throttled source, a client certificate) falls
through to that route, which answers and audits it. Once a report is being stored, an error is answered here with
the route's mapping (:func:`medfw.server.http.answer_for`), never passed on: nothing is stored twice.

The report of a unit known (from the poll cache) to have no certificate has no claims to check: it is handed to
the report writers (:meth:`FleetService.post_report`, the same group commit and checks as the route's) and
awaited on the event loop, so no thread waits for it; any other report is stored by the route's function in a
thread.
"""

from __future__ import annotations

import asyncio
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
from medfw.server.rollout import KEY_STATUSES
from medfw.server.routers.device import store_report
from medfw.server.service import FleetService
from medfw.server.views import ReportAck

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
            trusted = self.service.unsigned_trust(who)
            if trusted is None or body.status in KEY_STATUSES:  # claims to check, a campaign to follow: a thread
                ack = await run_in_threadpool(store_report, self.service, who, body)
            else:
                ack = await self._posted(who, body, trusted=trusted)
        except Exception as e:  # the route's mapping (the report is not passed on: it may be stored already)
            await answer_for(e, scope["method"], scope["path"])(scope, receive, send)
            return
        payload = {"device": ack.device, "status": ack.status, "accepted": ack.accepted}
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _posted(self, who: str, body: schemas.ReportIn, *, trusted: bool) -> ReportAck:
        """Store the report of a unit without a certificate (no claims to check): handed to the report writers
        and awaited, no thread waiting for it (:meth:`FleetService.post_report`)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def notify() -> None:  # (called from the writer thread)
            loop.call_soon_threadsafe(_resolve, done)

        fields = {"version": body.version, "secure_version": body.secure_version, "slot": body.slot}
        pending = self.service.pending_report(
            who,
            status=body.status,
            reason=body.reason,
            detail=body.detail,
            rollout_id=body.rollout,
            fields=fields,
            trusted=trusted,
            notify=notify,
        )
        self.service.post_report(pending)
        await done
        return self.service.report_outcome(pending)


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
