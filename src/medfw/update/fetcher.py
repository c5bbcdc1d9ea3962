"""HTTP for the device agent: a python-tuf fetcher and bounded retries over one injectable ``httpx.Client``.

The client is injectable so that tests and simulations can run the agent against an in-process server (any
``httpx.Client``, e.g. one over an ASGI or WSGI transport) or a real one on loopback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
from tuf.api.exceptions import DownloadHTTPError, SlowRetrievalError
from tuf.ngclient.fetcher import FetcherInterface

from medfw.errors import TransportError

__all__ = ["HttpxFetcher", "RetryPolicy", "request_with_retry"]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff: ``attempts`` tries, waiting ``base * 2**n`` (≤ ``cap``) between."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return float(min(self.cap, self.base * (2**attempt)))


def request_with_retry(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: object,
) -> httpx.Response:
    """Send a request, retrying connection errors and 5xx answers with backoff.

    Raises:
        TransportError: every attempt failed (the last cause is named).
    """
    last = "no attempt made"
    for attempt in range(policy.attempts):
        try:
            response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as e:
            last = f"{e.__class__.__name__}: {e}"
        else:
            if response.status_code < 500:
                return response
            last = f"HTTP {response.status_code}"
        if attempt + 1 < policy.attempts:
            sleep(policy.delay(attempt))
    raise TransportError(f"server unreachable after {policy.attempts} attempts ({last})", path=url)


class HttpxFetcher(FetcherInterface):
    """python-tuf ngclient fetcher over an ``httpx.Client`` (so TUF metadata uses the agent's transport)."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        chunk_size: int = 64 * 1024,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._chunk_size = chunk_size
        self._deadline = deadline
        self._clock = clock

    def _fetch(self, url: str) -> Iterator[bytes]:
        started = self._clock()
        response = self._client.send(self._client.build_request("GET", url), stream=True)
        if response.status_code != 200:
            response.close()
            raise DownloadHTTPError(f"HTTP {response.status_code} for {url}", response.status_code)
        return self._chunks(response, started, url)

    def _chunks(self, response: httpx.Response, started: float, url: str) -> Iterator[bytes]:
        # streamed, so python-tuf's length limits stop an endless-data attack early, and the deadline a slow drip
        try:
            for chunk in response.iter_bytes():  # as received, so the deadline is checked per arrival
                if self._deadline is not None and self._clock() - started > self._deadline:
                    raise SlowRetrievalError(f"{url} took longer than the {self._deadline:g} s deadline")
                yield chunk
        finally:
            response.close()
