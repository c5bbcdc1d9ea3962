"""Group commit of device reports: reports arriving together are written in one transaction.

Each report is still acknowledged only after the transaction holding it (the report, the assignment's move, the
device's reported state and the audit event in the outbox) has committed. A request thread that finds fewer than
``writers`` batches being written writes one itself — the reports queued at that moment, at most one per device
and none of a device whose report is being written (so a device's reports keep their order) — and goes on until
its own report is written; the others wait for theirs. A report *posted* from the event loop
(:meth:`ReportQueue.post`) has no thread waiting for it: a writer thread of the queue writes it and calls the
report's ``notify`` once it is finished, so an event loop hands a report over and gets it back once per report,
without a thread of its own waiting (and waking) for each one. When the database refuses a batch, each of its
reports is written in a transaction of its own, so one bad report never costs another device its report.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medfw.server.cache import Reported
from medfw.server.views import ReportAck

__all__ = ["PendingReport", "ReportQueue"]

#: reports written in one transaction at most
BATCH = 64
#: batches written at the same time by one process
WRITERS = 2


@dataclass
class PendingReport:
    """A validated report waiting to be written, and its outcome once written."""

    device_id: str
    status: str
    reason: str | None
    detail: str | None
    rollout_id: int | None
    fields: dict[str, Any]
    trusted: bool
    when: datetime
    polled: tuple[datetime, Reported] | None
    ack: ReportAck | None = None
    error: BaseException | None = None
    done: bool = field(default=False, repr=False)
    notify: Callable[[], None] | None = field(default=None, repr=False)

    def finish(self, ack: ReportAck | None = None, error: BaseException | None = None) -> None:
        """Record the outcome (an acknowledgement or the error to raise) and call ``notify``."""
        self.ack, self.error, self.done = ack, error, True
        if self.notify is not None:
            self.notify()

    def finished(self) -> bool:
        """Whether the outcome is known."""
        return self.done

    def outcome(self) -> ReportAck:
        """The acknowledgement, or raise the report's error."""
        if self.error is not None:
            raise self.error
        assert self.ack is not None
        return self.ack


class ReportQueue:
    """Leader/follower group commit over ``write`` (which must finish every report it is given).

    Args:
        write: writes a batch of reports (at most one per device) and finishes each.
        writers: batches written at the same time (each on its own database connection).
    """

    def __init__(self, write: Callable[[list[PendingReport]], None], *, writers: int = WRITERS) -> None:
        self._write = write
        self._writers = writers
        self._queue: list[PendingReport] = []
        self._leading = 0
        self._inflight: set[str] = set()
        self._cond = threading.Condition()

    def submit(self, report: PendingReport) -> ReportAck:
        """Queue ``report`` and return once it is written (writing batches meanwhile while fewer than ``writers``
        threads do)."""
        with self._cond:
            self._queue.append(report)
            while not report.finished() and self._leading >= self._writers:
                self._cond.wait()
            if report.finished():
                return report.outcome()
            self._leading += 1
        try:
            while not report.finished():
                with self._cond:
                    batch = self._take()
                    if not batch:  # its report is in another writer's batch: wait for it
                        self._cond.wait()
                        continue
                self._run(batch)
        finally:
            self._release()
        return report.outcome()

    def post(self, report: PendingReport) -> None:
        """Queue ``report`` without waiting: a writer thread of the queue writes it and calls ``report.notify``
        (from that thread) once it is finished."""
        with self._cond:
            self._queue.append(report)
            self._spawn()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no report is queued or being written (its transaction and what follows it, the audit
        append included, done); return False when ``timeout`` seconds passed first (a stopping server)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and self._leading == 0, timeout)

    def _spawn(self) -> None:
        """(Under the lock.) Start a writer thread for queued reports while fewer than ``writers`` write."""
        if self._queue and self._leading < self._writers:
            self._leading += 1
            threading.Thread(target=self._drain, name="medfw-ota-reports", daemon=True).start()

    def _drain(self) -> None:
        """A writer thread: write batches until nothing is queued."""
        try:
            while True:
                with self._cond:
                    batch = self._take()
                    if not batch:
                        if not self._queue:
                            return
                        self._cond.wait()  # only reports of devices another writer is writing: wait for it
                        continue
                self._run(batch)
        finally:
            self._release()

    def _run(self, batch: list[PendingReport]) -> None:
        """Write a batch taken by :meth:`_take` (finishing every report in it)."""
        try:
            self._write(batch)
        except BaseException as e:  # (write finishes every report; this is its last resort)
            for r in batch:
                if not r.finished():
                    r.finish(error=e)
        with self._cond:
            self._inflight.difference_update(r.device_id for r in batch)
            self._cond.notify_all()

    def _release(self) -> None:
        """A writer stops: free its place (and hand posted reports nobody waits for to a writer thread)."""
        with self._cond:
            self._leading -= 1
            self._spawn()
            self._cond.notify_all()

    def _take(self) -> list[PendingReport]:
        """(Under the lock.) The oldest queued reports, at most one per device and :data:`BATCH` in all."""
        batch: list[PendingReport] = []
        devices: set[str] = set()
        rest: list[PendingReport] = []
        for r in self._queue:
            if len(batch) < BATCH and r.device_id not in devices and r.device_id not in self._inflight:
                batch.append(r)
                devices.add(r.device_id)
            else:
                rest.append(r)
        self._queue = rest
        self._inflight.update(devices)
        return batch
