"""The agent's report outbox: reports that could not be sent wait in ``ota/outbox.json`` (bounded, oldest progress
reports dropped first) and go out, in order, on a later cycle."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from medfw._io import atomic_write, read_bytes
from medfw.errors import InputError, TransportError
from medfw.update.agent_model import MAX_OUTBOX
from medfw.update.fetcher import RetryPolicy, request_with_retry

__all__ = ["Outbox"]


@dataclass(frozen=True)
class Outbox:
    """Sends reports to ``url`` and keeps the unsent ones in ``path``.

    ``refused`` is called with the HTTP status of a report the server answered with an error (it is not resent).
    """

    path: Path
    client: httpx.Client
    url: str
    retry: RetryPolicy
    sleep: Callable[[float], None]
    refused: Callable[[int], None]

    def queued(self) -> list[dict[str, Any]]:
        """The reports waiting (an unreadable outbox counts as empty)."""
        if not self.path.exists():
            return []
        try:
            items = json.loads(read_bytes(self.path, max_length=4 * 1024 * 1024, what="report outbox"))
        except (InputError, ValueError):
            return []
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

    def send(self, queue: list[dict[str, Any]], headers: dict[str, str]) -> None:
        """Send ``queue`` in order until the server cannot be reached; keep the rest (at most ``MAX_OUTBOX``)."""
        sent = 0
        for body in queue:
            try:
                r = request_with_retry(
                    self.client, "POST", self.url, policy=self.retry, sleep=self.sleep, json=body, headers=headers
                )
            except TransportError:
                break
            sent += 1
            if r.status_code >= 400:
                self.refused(r.status_code)
        rest = queue[sent:][-MAX_OUTBOX:]  # bounded: the oldest progress reports go first
        if rest:
            atomic_write(self.path, json.dumps(rest).encode())
        elif self.path.exists():
            self.path.unlink()
