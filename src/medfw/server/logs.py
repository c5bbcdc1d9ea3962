"""Server logging: one line per request (method, path, status, latency, who), text or JSON.

Secrets never reach a log line: only the path (no query string, no headers) and the authenticated actor
(``device:<id>`` or ``token:<name>``) are logged.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from medfw.server.middleware import ASGIApp, Message, Receive, Scope, Send, set_actor

__all__ = ["JsonFormatter", "RequestLog", "configure_logging", "set_actor"]

request_log = logging.getLogger("medfw.server.request")

_FIELDS = ("method", "path", "status", "latency_ms", "actor", "client")
_LINE = "%s %s %d %.2fms %s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the request fields."""

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # the date part changes once a second: format it once
            self._second, self._stamp = second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        out: dict[str, Any] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


def configure_logging(fmt: str = "text", *, level: int = logging.INFO) -> None:
    """Send the ``medfw`` loggers to stderr as ``text`` or ``json`` lines (replacing earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger("medfw")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class RequestLog:
    """Log each HTTP request once its response has started: ``METHOD PATH STATUS LATENCYms actor``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not request_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            latency = round((time.perf_counter() - start) * 1000, 2)
            actor = scope.get("state", {}).get("actor")
            client = scope.get("client")
            extra = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status[0],
                "latency_ms": latency,
                "actor": actor,
                "client": client[0] if client else None,
            }
            # makeRecord + handle: what Logger.info does, without looking up the caller's frame (most of its cost)
            args = (scope["method"], scope["path"], status[0], latency, actor or "-")
            request_log.handle(
                request_log.makeRecord(request_log.name, logging.INFO, __file__, 0, _LINE, args, None, extra=extra)
            )
