"""An attacker in front of (or inside) the fleet server: rewrites answers, cuts streams, records requests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx


class _CutStream(httpx.SyncByteStream):
    def __init__(self, data: bytes, cut: int) -> None:
        self.data = data
        self.cut = cut

    def __iter__(self) -> Iterator[bytes]:
        yield self.data[: self.cut]
        raise httpx.ReadError("connection reset by peer")


class _DripStream(httpx.SyncByteStream):
    """One byte per chunk (each "arrives" when the reader asks for it: the test's clock decides how slowly)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        for i in range(len(self.data)):
            yield self.data[i : i + 1]


class EvilTransport(httpx.BaseTransport):
    """Forwards to a real client; hooks may rewrite poll answers, cut artifact downloads or fail requests."""

    def __init__(self, upstream: httpx.Client) -> None:
        self.upstream = upstream
        self.requests: list[httpx.Request] = []
        self.rewrite_poll: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.cut_artifact_at: int | None = None
        self.fail: Callable[[httpx.Request], bool] = lambda _r: False
        self.drip: Callable[[httpx.Request], bool] = lambda _r: False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail(request):
            raise httpx.ConnectError("connection refused")
        fwd = self.upstream.build_request(
            request.method, str(request.url), headers=request.headers, content=request.read()
        )
        resp = self.upstream.send(fwd)
        body = resp.read()
        headers = [
            (k, v) for k, v in resp.headers.multi_items() if k.lower() not in ("content-length", "content-encoding")
        ]
        if request.url.path.endswith("/poll") and resp.status_code == 200 and self.rewrite_poll is not None:
            data = self.rewrite_poll(json.loads(body))
            return httpx.Response(200, headers=[h for h in headers if h[0].lower() != "etag"], json=data)
        if (
            request.url.path.endswith("/artifact")
            and self.cut_artifact_at is not None
            and resp.status_code in (200, 206)
        ):
            cut, self.cut_artifact_at = self.cut_artifact_at, None
            return httpx.Response(resp.status_code, headers=headers, stream=_CutStream(body, cut))
        if self.drip(request) and resp.status_code in (200, 206):
            return httpx.Response(resp.status_code, headers=headers, stream=_DripStream(body))
        return httpx.Response(resp.status_code, headers=headers, content=body)


def evil_client(upstream: httpx.Client) -> tuple[httpx.Client, EvilTransport]:
    transport = EvilTransport(upstream)
    return httpx.Client(base_url=str(upstream.base_url), transport=transport), transport
