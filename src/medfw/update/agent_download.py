"""The agent's image download: HTTP Range resume into ``ota/download/<sha256>.part``, bounded by the signed TUF
length, a deadline and retries, and checked against the signed TUF hashes before anything is installed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import TargetFile

from medfw.update.agent_model import DeferReason, RejectReason, _Deferred, _Rejected
from medfw.update.fetcher import RetryPolicy

__all__ = ["ImageDownload"]


@dataclass(frozen=True)
class ImageDownload:
    """How the agent downloads: its client, retry policy, clock, deadline and progress callback."""

    client: httpx.Client
    retry: RetryPolicy
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    deadline: float
    progress: Callable[[int, int], None] | None = None

    def fetch(self, url: str, auth: dict[str, str], part: Path, target: TargetFile) -> bytes:
        """Fetch ``target`` from ``url`` into ``part``, resuming with ``Range``; check TUF length and hashes.

        Raises:
            _Deferred: interrupted, an HTTP error answer or over the deadline (``part`` keeps what arrived).
            _Rejected: more bytes than signed, or a hash mismatch (``part`` is removed).
        """
        part.parent.mkdir(parents=True, exist_ok=True)
        started = self.clock()
        for attempt in range(self.retry.attempts):
            have = part.stat().st_size if part.exists() else 0
            if have > target.length:
                part.unlink()
                have = 0
            if have == target.length:
                break
            try:
                self._fetch_into(part, url, auth, have, target.length, started=started)
            except httpx.HTTPError:
                if attempt + 1 < self.retry.attempts:
                    self.sleep(self.retry.delay(attempt))
                continue
        data = part.read_bytes() if part.exists() else b""
        if len(data) != target.length:
            raise _Deferred(DeferReason.DOWNLOAD_INTERRUPTED, f"got {len(data)} of {target.length} bytes; will resume")
        try:
            target.verify_length_and_hashes(data)
        except tuf_exc.LengthOrHashMismatchError as e:
            with contextlib.suppress(OSError):
                part.unlink()
            raise _Rejected(
                RejectReason.HASH_MISMATCH, f"image does not match its signed TUF hash: {e}", stage="download"
            ) from None
        with contextlib.suppress(OSError):
            part.unlink()
        return data

    def _fetch_into(
        self, part: Path, url: str, auth: dict[str, str], have: int, length: int, *, started: float
    ) -> None:
        """One attempt: append to (or restart) ``part``; never more than ``length`` bytes, never past the deadline."""
        headers = dict(auth)
        if have:
            headers["Range"] = f"bytes={have}-"
        with self.client.stream("GET", url, headers=headers) as r:
            if r.status_code not in (200, 206):
                raise _Deferred(DeferReason.DOWNLOAD_FAILED, f"HTTP {r.status_code} for the image")
            mode = "ab" if r.status_code == 206 and have else "wb"
            with part.open(mode) as fh:
                written = have if mode == "ab" else 0
                for chunk in r.iter_bytes():  # unbuffered: every received byte is kept
                    if self.clock() - started > self.deadline:
                        fh.flush()
                        msg = f"download took longer than the {self.deadline:g} s deadline; will resume"
                        raise _Deferred(DeferReason.DOWNLOAD_DEADLINE, msg)
                    written += len(chunk)
                    if written > length:
                        raise _Rejected(
                            RejectReason.HASH_MISMATCH, "server sent more bytes than signed", stage="download"
                        )
                    fh.write(chunk)
                    if self.progress is not None:
                        self.progress(written, length)
                fh.flush()
