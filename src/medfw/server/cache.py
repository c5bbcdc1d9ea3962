"""The per-process poll cache: answers and credential digests, invalidated by the fleet generation.

Every change that can alter a poll answer bumps a generation counter in the database (``fleet_state``). A process
keeps its cached answers while the generation it last read is current: its own changes drop the cache at once,
other processes' changes within ``check_every`` seconds. What polling devices report (version, secure_version,
slot, last seen) is buffered here and written in batches by the service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from medfw.server.views import PollResult

__all__ = ["AuthEntry", "PollCache", "Reported"]

#: what a device reports in a poll: (version, secure_version, slot)
Reported = tuple[str | None, int, str | None]
_MAX_CACHED = 500_000


@dataclass(frozen=True)
class AuthEntry:
    """A device's stored credential: salt and digest, and the previous ones while a rotation's grace period runs."""

    salt: str
    digest: str
    prev_salt: str | None = None
    prev_digest: str | None = None
    prev_until: datetime | None = None


class PollCache:
    """Cached poll answers and credential digests of one process.

    Args:
        read_generation: reads the current generation from the database.
        check_every: seconds between two reads of the generation.
    """

    def __init__(self, read_generation: Callable[[], int], *, check_every: float = 0.5) -> None:
        self._read = read_generation
        self.check_every = check_every
        self.generation = -1
        self._checked = float("-inf")
        self._auth: dict[str, AuthEntry] = {}
        self._polls: dict[str, tuple[int, Reported, PollResult]] = {}
        self._seen: dict[str, tuple[datetime, Reported]] = {}
        self._lock = threading.Lock()

    def current(self) -> int:
        """The generation, re-read at most every ``check_every`` seconds; a new one drops every cached entry."""
        now = time.monotonic()
        if now - self._checked < self.check_every:
            return self.generation
        generation = self._read()
        with self._lock:
            self._checked = now
            if generation != self.generation:
                self._polls.clear()
                self._auth.clear()
                self.generation = generation
        return generation

    def bumped(self, generation: int) -> None:
        """This process changed the fleet: adopt ``generation`` and drop the cached answers."""
        with self._lock:
            self._polls.clear()
            self.generation = generation
            self._checked = time.monotonic()

    def poll(self, device_id: str, reported: Reported, generation: int) -> PollResult | None:
        """The cached answer for a device reporting ``reported``, if it is still current."""
        hit = self._polls.get(device_id)
        if hit is not None and hit[0] == generation and hit[1] == reported:
            return hit[2]
        return None

    def store_poll(self, device_id: str, reported: Reported, generation: int, result: PollResult) -> None:
        """Cache an answer computed at ``generation`` (dropped when the generation moved meanwhile)."""
        with self._lock:
            if self.generation != generation:
                return
            if len(self._polls) >= _MAX_CACHED:
                self._polls.clear()
            self._polls[device_id] = (generation, reported, result)

    def auth(self, device_id: str) -> AuthEntry | None:
        """The cached credential digest of a device."""
        return self._auth.get(device_id)

    def store_auth(self, device_id: str, entry: AuthEntry) -> None:
        """Cache a device's credential digest."""
        with self._lock:
            if len(self._auth) >= _MAX_CACHED:
                self._auth.clear()
            self._auth[device_id] = entry

    def drop_auth(self, device_id: str) -> None:
        """Forget a device's credential digest (decommissioned, rotated)."""
        with self._lock:
            self._auth.pop(device_id, None)

    def seen(self, device_id: str, when: datetime, reported: Reported) -> None:
        """Buffer what a polling device reported."""
        with self._lock:
            self._seen[device_id] = (when, reported)

    def requeue_seen(self, seen: dict[str, tuple[datetime, Reported]]) -> None:
        """Put back poll data that could not be written (newer data of the same device wins)."""
        with self._lock:
            for device_id, entry in seen.items():
                self._seen.setdefault(device_id, entry)

    def take_seen(self) -> dict[str, tuple[datetime, Reported]]:
        """Hand over (and clear) the buffered poll reports."""
        with self._lock:
            seen, self._seen = self._seen, {}
        return seen
