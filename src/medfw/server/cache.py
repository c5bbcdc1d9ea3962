"""The per-process poll cache: answers and credential digests, invalidated through two database counters.

Two counters in ``fleet_state`` (:mod:`medfw.server.store`) tell a process what other processes changed:

* the **fleet generation**: a change that can alter any poll answer or credential (a device decommissioned, a
  credential rotated, a maintenance window …) drops every cached answer and credential digest;
* the **assignment generation**: assignments moved (a rollout created, paused, advanced; a device reporting a
  state that starts its assignment). Only the *busy* devices can be affected — those with an active
  assignment in a running rollout, or with something else in their answer (:meth:`DeviceOps.busy_devices`) — so
  the process re-reads that set and drops the answers of the devices in the old or the new set;
* the **ended generation**: assignments only ended (devices reporting a final state while their rollout goes on).
  The busy set can only shrink then: the old one is still a superset, so idle devices keep their in-memory answer
  (nobody waits for a re-read); the busy devices' cached answers are dropped, and the watching thread re-reads the
  set in the background to shrink it.

Every other device (*idle*) gets the same answer without a database read: no assignment. Counters are read at
most every ``check_every`` seconds, so another process's change is seen within that time (the process's own
changes at once). In the server (:meth:`PollCache.watch`) a background thread reads the counters, so a poll never
waits for the database, and every credential is loaded in bulk (one query) when the fleet generation moves, so a
first poll after a start does not read the database either. What polling devices report (version, secure_version, slot,
last seen) is buffered here and written in batches by the service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from medfw.server.views import PollResult

__all__ = ["AuthEntry", "Generations", "PollCache", "Reported"]

#: what a device reports in a poll: (version, secure_version, slot)
Reported = tuple[str | None, int, str | None]
#: (fleet generation, assignment generation)
Generations = tuple[int, int]
#: what the database holds: (fleet generation, assignment generation, ended generation)
Counters = tuple[int, int] | tuple[int, int, int]
_MAX_CACHED = 500_000
_UNKNOWN = "?"  # (not a PEM)

log = logging.getLogger("medfw.server")
#: while watching, a poll reads the counters itself when the last read is this many ``check_every`` old
_WATCH_STALE = 3
#: seconds between two background re-reads of a busy set that assignments ending made a superset
_SHRINK_EVERY = 2.0


@dataclass(frozen=True)
class AuthEntry:
    """A device's stored credential: salt and digest, and the previous ones while a rotation's grace period runs."""

    salt: str
    digest: str
    prev_salt: str | None = None
    prev_digest: str | None = None
    prev_until: datetime | None = None


class PollCache:
    """Cached poll answers, the busy-device set and credential digests of one process.

    Args:
        read_generations: reads (fleet generation, assignment generation[, ended generation]) from the database.
        check_every: seconds between two reads of the counters.
        load_credentials: reads every active device's credential (bulk warm-up after a fleet change; ``None``:
            credentials are read device by device).
        load_certified: reads which devices have a certificate (with the warm-up: every other warmed device is
            known to have none, so its reports read no certificate).
    """

    def __init__(
        self,
        read_generations: Callable[[], Counters],
        *,
        check_every: float = 0.5,
        load_credentials: Callable[[], Iterable[tuple[str, AuthEntry]]] | None = None,
        load_certified: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self._read = read_generations
        self._load_credentials = load_credentials
        self._load_certified = load_certified
        self.check_every = check_every
        self.generation = -1
        self.assignments = -1
        self.ended = -1
        self._checked = float("-inf")
        self._auth: dict[str, AuthEntry] = {}
        self._polls: dict[str, tuple[int, Reported, PollResult]] = {}
        self._busy: frozenset[str] | None = None  # valid for self.assignments; None: to be read again
        self._last_busy: frozenset[str] = frozenset()
        self._seen: dict[str, tuple[datetime, Reported]] = {}
        self._certs: dict[str, str | None] = {}
        self._shrink = False  # the busy set is a superset (assignments ended): re-read it in the background
        self._lock = threading.Lock()
        self._busy_lock = threading.Lock()
        self._warming = False
        self._watcher: threading.Event | None = None

    # ---- generations -----------------------------------------------------------------------------------------

    def current(self) -> Generations:
        """The counters, re-read at most every ``check_every`` seconds (a moved one invalidates, see above).

        While :meth:`watch` runs, a background thread re-reads them and this never waits for the database (it is
        called on the server's event loop for every poll)."""
        now = time.monotonic()
        if now - self._checked < (self.check_every if self._watcher is None else _WATCH_STALE * self.check_every):
            return self.generation, self.assignments
        return self._check(now)  # not watching, or its last read failed (the database is away: this raises)

    def _check(self, now: float, read: Callable[[], Counters] | None = None) -> Generations:
        fleet, assignments, *rest = (read or self._read)()
        with self._lock:
            self._checked = now
            if fleet != self.generation:
                self._drop_all(fleet, assignments)
            elif assignments != self.assignments:
                self.assignments = assignments
                self._busy = None
            if rest and rest[0] != self.ended:
                self._end(rest[0])
        return fleet, assignments

    def _end(self, ended: int) -> None:
        """(Under the lock.) Assignments ended: drop the busy devices' answers; the busy set stays a superset."""
        self.ended = ended
        self._polls.clear()  # (only busy devices' answers are cached)
        self._shrink = self._busy is not None

    def watch(
        self, read: Callable[[], Counters] | None = None, read_busy: Callable[[], Iterable[str]] | None = None
    ) -> None:
        """Read the counters (with ``read``, else as :meth:`current` does) twice per ``check_every`` in a background
        thread until :meth:`unwatch`; the first read now. With ``read_busy``, the thread also shrinks the busy set
        after assignments ended."""
        self.unwatch()  # (one watching thread per cache, also when an application is started twice)
        stop = self._watcher = threading.Event()  # (first: the warm-up below runs only for a watching cache)
        reader = read or self._read

        def check() -> bool:
            try:
                self._check(time.monotonic(), reader)
                return True
            except Exception as e:  # the database is away: polls read it themselves (and get 503) until it is back
                self._checked = float("-inf")
                log.warning("reading the fleet generation failed: %s", type(e).__name__)
                return False

        def loop() -> None:
            shrunk = float("-inf")
            while not stop.wait(self.check_every / 2):
                # a rollout's reports end assignments all the time: the set is shrunk at most every _SHRINK_EVERY
                if check() and self._shrink and read_busy is not None and time.monotonic() - shrunk >= _SHRINK_EVERY:
                    shrunk = time.monotonic()
                    try:
                        self.refresh_busy(read_busy, shrink=True)
                    except Exception as e:  # the superset stays (correct, only slower for ended devices)
                        log.warning("re-reading the busy devices failed: %s", type(e).__name__)

        check()
        threading.Thread(target=loop, name="medfw-ota-generations", daemon=True).start()

    def unwatch(self) -> None:
        """Stop the background thread of :meth:`watch` (reads happen on demand again)."""
        if self._watcher is not None:
            self._watcher.set()
            self._watcher = None

    def _drop_all(self, fleet: int, assignments: int) -> None:
        """(Under the lock.) A fleet change: forget every answer and credential; warm the credentials again."""
        self._polls.clear()
        self._auth.clear()
        self._certs.clear()
        self._busy = None
        self.generation, self.assignments = fleet, assignments
        if self._load_credentials is not None and self._watcher is not None and not self._warming:
            self._warming = True
            threading.Thread(target=self._warm, args=(fleet,), name="medfw-ota-warm", daemon=True).start()

    def bumped(self, generation: int) -> None:
        """This process changed the fleet: adopt ``generation`` and drop every cached answer and digest."""
        with self._lock:
            self._checked = time.monotonic()
            if generation != self.generation:
                self._drop_all(generation, self.assignments)

    def moved(self, assignments: int) -> None:
        """This process moved assignments: adopt the assignment generation (the busy set is read again)."""
        with self._lock:
            if assignments != self.assignments:
                self.assignments = assignments
                self._busy = None

    def ended_here(self, ended: int) -> None:
        """This process ended assignments: adopt the ended generation (see the module docstring)."""
        with self._lock:
            if ended != self.ended:
                self._end(ended)

    # ---- busy devices and answers ----------------------------------------------------------------------------

    def idle(self, device_id: str) -> bool | None:
        """Whether a device is idle (its answer needs no database read); ``None`` while the busy set is unknown."""
        busy = self._busy
        return None if busy is None else device_id not in busy

    def refresh_busy(self, read_busy: Callable[[], Iterable[str]], *, shrink: bool = False) -> None:
        """Read the busy set again if the assignment generation moved (``shrink``: if assignments ended), one
        reader at a time; drop the answers of devices that were or are busy."""
        with self._busy_lock:
            with self._lock:
                if self._busy is not None and not (shrink and self._shrink):
                    return
                self._shrink = False
                fleet, assignments, old = self.generation, self.assignments, self._last_busy
            busy = frozenset(read_busy())
            with self._lock:
                if (fleet, assignments) != (self.generation, self.assignments):
                    return  # moved again meanwhile: the next reader reads it
                for device_id in old | busy:
                    self._polls.pop(device_id, None)
                self._busy = self._last_busy = busy

    def poll(self, device_id: str, reported: Reported, generation: int) -> PollResult | None:
        """The cached answer of a busy device reporting ``reported``, if it is still current."""
        if self._busy is None:
            return None
        hit = self._polls.get(device_id)
        if hit is not None and hit[0] == generation and hit[1] == reported:
            return hit[2]
        return None

    def store_poll(self, device_id: str, reported: Reported, generations: Generations, result: PollResult) -> None:
        """Cache an answer computed at ``generations`` (dropped when a counter moved meanwhile)."""
        with self._lock:
            if (self.generation, self.assignments) != generations or self._busy is None:
                return
            if len(self._polls) >= _MAX_CACHED:
                self._polls.clear()
            self._polls[device_id] = (generations[0], reported, result)

    # ---- credentials -----------------------------------------------------------------------------------------

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

    def certificate(self, device_id: str, load: Callable[[str], str | None]) -> str | None:
        """A device's certificate (PEM; ``None``: a shared-secret unit), loaded once per fleet generation (every
        change of a device's identity bumps it)."""
        try:
            return self._certs[device_id]
        except KeyError:
            pass
        generation = self.generation
        pem = load(device_id)
        with self._lock:
            if generation == self.generation and len(self._certs) < _MAX_CACHED:
                self._certs[device_id] = pem
        return pem

    def uncertified(self, device_id: str) -> bool:
        """Whether a device is cached (for the current fleet generation) as having no certificate."""
        return self._certs.get(device_id, _UNKNOWN) is None

    def _warm(self, fleet: int) -> None:
        """Load every credential (one query) and which devices have a certificate (one more), and keep them if the
        fleet did not change meanwhile."""
        certified: set[str] | None = None
        try:
            assert self._load_credentials is not None
            loaded = dict(self._load_credentials())
            if self._load_certified is not None:
                certified = set(self._load_certified())
        except Exception:  # a warm-up is an optimisation: devices are then read one by one
            loaded = {}
        with self._lock:
            if self.generation != fleet:  # changed meanwhile: load again for the new generation
                threading.Thread(target=self._warm, args=(self.generation,), name="medfw-ota-warm", daemon=True).start()
                return
            self._warming = False
            if len(loaded) + len(self._auth) < _MAX_CACHED:
                for device_id, entry in loaded.items():
                    self._auth.setdefault(device_id, entry)
            if certified is not None and len(loaded) + len(self._certs) < _MAX_CACHED:
                for device_id in loaded.keys() - certified:  # (a certified one's PEM is read when needed)
                    self._certs.setdefault(device_id, None)

    # ---- poll data -------------------------------------------------------------------------------------------

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

    def take_seen_of(self, device_id: str) -> tuple[datetime, Reported] | None:
        """Hand over (and clear) one device's buffered poll report."""
        with self._lock:
            return self._seen.pop(device_id, None)
