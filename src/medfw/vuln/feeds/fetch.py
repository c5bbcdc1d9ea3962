"""Fetching feed data from an upstream, an internal mirror or a local directory (air-gapped sites).

A *base* is an ``http(s)://`` URL, a ``file://`` URL or a directory path. ``get(base, path)`` returns the bytes of
``base/path``: over HTTP with :mod:`httpx` (timeouts; retries with exponential backoff and jitter on connection
errors, 429, 502, 503, 504 and 403 (NVD's answer when rate-limited), honouring ``Retry-After``), or from the file
under the directory. Secrets (the NVD API key) travel in headers only, never in a URL, so every URL in a message
is safe to show. An optional sliding-window rate limit spaces requests (NVD: 5 per 30 s without a key, 50 with one).
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit

import httpx

from medfw._io import read_bytes
from medfw.errors import FeedError, TransportError

__all__ = ["Fetcher", "RateLimit", "is_local", "local_path"]

_RETRY_STATUS = {429, 502, 503, 504}
_MAX_BODY = 4 * 1024 * 1024 * 1024


def is_local(base: str) -> bool:
    """Whether ``base`` is a directory path or a ``file://`` URL."""
    return base.startswith("file://") or "://" not in base


def local_path(base: str, path: str = "") -> Path:
    """The file a local base and relative path name."""
    root = Path(unquote(urlsplit(base).path)) if base.startswith("file://") else Path(base)
    return root / path if path else root


class RateLimit:
    """At most ``requests`` per ``window`` seconds (sliding window); ``clock``/``sleep`` injectable for tests."""

    def __init__(
        self,
        requests: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.requests = requests
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.sent: collections.deque[float] = collections.deque()

    def wait(self) -> float:
        """Block until one more request is allowed; return the time waited."""
        now = self.clock()
        while self.sent and now - self.sent[0] >= self.window:
            self.sent.popleft()
        waited = 0.0
        if len(self.sent) >= self.requests:
            waited = self.window - (now - self.sent[0])
            self.sleep(waited)
            now = self.clock()
            self.sent.popleft()
        self.sent.append(now)
        return waited


class Fetcher:
    """GET with retries (see the module docstring). Use as a context manager."""

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        attempts: int = 5,
        backoff: float = 1.0,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": "medfw-feed-sync"})
        self.attempts = attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.requests = 0

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after.strip()), self.max_wait)
        jitter = random.uniform(0, self.backoff / 2)  # noqa: S311 - jitter, not crypto
        delay: float = self.backoff * 2.0**attempt + jitter
        return min(delay, self.max_wait)

    def get(
        self,
        source: str,
        base: str,
        path: str = "",
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        limit: RateLimit | None = None,
        missing_ok: bool = False,
    ) -> bytes | None:
        """Return the bytes of ``base/path`` (with query ``params``), or None if missing and ``missing_ok``.

        Raises:
            FeedError: the file or URL does not exist (HTTP 404/410) and ``missing_ok`` is false.
            TransportError: the server could not be reached, TLS failed, or it kept failing after retries.
        """
        if is_local(base):
            p = local_path(base, path)
            if not p.is_file():
                if missing_ok:
                    return None
                raise FeedError(f"{source}: mirror file not found", path=str(p))
            return read_bytes(p, max_length=_MAX_BODY, what=f"{source} feed")
        url = base.rstrip("/") + ("/" + path.lstrip("/") if path else "")
        shown = f"{url}?{urlencode(dict(params))}" if params else url
        last = ""
        for attempt in range(self.attempts):
            if limit is not None:
                limit.wait()
            self.requests += 1
            retry_after = None
            try:
                resp = self.client.get(url, params=dict(params) if params else None, headers=dict(headers or {}))
            except httpx.HTTPError as e:
                last = f"{e.__class__.__name__}: {e}"
            else:
                if resp.status_code == 200:
                    return resp.content
                last = f"HTTP {resp.status_code}"
                if resp.status_code in (404, 410):
                    if missing_ok:
                        return None
                    raise FeedError(f"{source}: {last} (not found)", path=shown)
                if resp.status_code not in _RETRY_STATUS and resp.status_code != 403:
                    raise TransportError(f"{source}: {last}", path=shown)
                retry_after = resp.headers.get("Retry-After")
            if attempt + 1 < self.attempts:
                self.sleep(self._delay(attempt, retry_after))
        raise TransportError(f"{source}: giving up after {self.attempts} attempts: {last}", path=shown)
