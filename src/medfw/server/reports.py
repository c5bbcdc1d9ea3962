"""Device status reports: validated, then written with the reports arriving at the same time (group commit,
:mod:`medfw.server.report_batch`), each acknowledged once its transaction has committed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from typing import Any

from sqlalchemy.exc import DBAPIError

from medfw.server import rollout as rules
from medfw.server import rollouts
from medfw.server import store_reports as report_sql
from medfw.server import store_rollouts as rollout_sql
from medfw.server.base import ServiceBase
from medfw.server.errors import Invalid, NotFound
from medfw.server.report_batch import PendingReport, ReportQueue
from medfw.server.rollout import Decision
from medfw.server.store import is_outage
from medfw.server.views import ReportAck, ReportView
from medfw.server.work import Work, now

__all__ = ["ReportOps"]

log = logging.getLogger("medfw.server")


class ReportOps(ServiceBase):
    """Reports of devices."""

    @cached_property
    def _report_queue(self) -> ReportQueue:
        return ReportQueue(self._write_reports)

    def report(
        self,
        device_id: str,
        *,
        status: str,
        reason: str | None,
        detail: str | None,
        rollout_id: int | None,
        version: str | None,
        secure_version: int | None,
        slot: str | None,
        trusted: bool = True,
    ) -> ReportAck:
        """Store a device status report, move its assignment along and re-evaluate the rollout.

        A confirmation that is not ``trusted`` (see :meth:`check_claims`) is stored but moves the assignment to
        ``unverified``, which never counts toward the success threshold.
        """
        pending = self.pending_report(
            device_id,
            status=status,
            reason=reason,
            detail=detail,
            rollout_id=rollout_id,
            fields={"version": version, "secure_version": secure_version, "slot": slot},
            trusted=trusted,
        )
        try:
            ack = self._report_queue.submit(pending)
        except BaseException:
            if pending.polled is not None:
                self.cache.requeue_seen({device_id: pending.polled})
            raise
        if status in rules.KEY_STATUSES:
            self.campaign_report(device_id, status, reason)
        return ack

    def pending_report(
        self,
        device_id: str,
        *,
        status: str,
        reason: str | None,
        detail: str | None,
        rollout_id: int | None,
        fields: dict[str, Any],
        trusted: bool,
        notify: Callable[[], None] | None = None,
    ) -> PendingReport:
        """A checked report, ready for :meth:`post_report` (or :meth:`report`); ``fields``: version,
        secure_version, slot."""
        if status not in rules.REPORT_STATUSES:
            raise Invalid(f"unknown status {status!r}", field="status")
        if status in rules.ERROR_STATES and not reason:
            raise Invalid(f"a {status} report needs a reason", field="reason")
        return PendingReport(
            device_id=device_id,
            status=status,
            reason=reason,
            detail=detail,
            rollout_id=rollout_id,
            fields=fields,
            trusted=trusted,
            when=now(),
            polled=self.cache.take_seen_of(device_id),  # written first, so the report's fields win
            notify=notify,
        )

    def post_report(self, pending: PendingReport) -> None:
        """Queue a report (not a key-rotation one) without waiting for it: its ``notify`` is called from a writer
        thread once it is finished; then :meth:`report_outcome` answers it (the event loop's path)."""
        if pending.status in rules.KEY_STATUSES:
            raise Invalid("key-rotation reports are stored by report()", field="status")
        self._report_queue.post(pending)

    def report_outcome(self, pending: PendingReport) -> ReportAck:
        """The acknowledgement of a finished report, or raise its error (its device's poll data, not written
        then, waits for the next write)."""
        if pending.error is not None and pending.polled is not None:
            self.cache.requeue_seen({pending.device_id: pending.polled})
        return pending.outcome()

    def settle_reports(self, timeout: float = 30.0) -> None:
        """Wait for the report writers (a stopping server): a report posted from the event loop is answered once
        committed, while its writer thread may still be appending the audit events it committed."""
        queue: ReportQueue | None = self.__dict__.get("_report_queue")
        if queue is not None and not queue.wait_idle(timeout):
            log.warning("report writers still busy after %.0f s at shutdown", timeout)

    def campaign_report(self, device_id: str, status: str, reason: str | None) -> None:
        """Follow a unit's key-rotation report (implemented by the campaign service)."""

    def reports(
        self, *, device_id: str | None = None, rollout_id: int | None = None, limit: int = 100
    ) -> list[ReportView]:
        """Most recent reports first (optionally of one device and/or one rollout)."""
        return self.store.reports(device_id=device_id, rollout_id=rollout_id, limit=max(1, min(limit, 1000)))

    def _write_reports(self, batch: list[PendingReport]) -> None:
        """Write a batch in one transaction; when the database refuses it, each report in its own (so one bad
        report never costs another its acknowledgement). Finishes every report."""
        try:
            self._write_batch(batch)
            return
        except DBAPIError as e:
            if is_outage(e) or len(batch) == 1:
                for r in batch:
                    if not r.done:
                        r.finish(error=e)
                return
            log.warning("batched report write refused (%s); writing report by report", type(e.orig).__name__)
        except Exception as e:
            if len(batch) == 1:
                batch[0].finish(error=e)
                return
            log.warning("batched report write failed (%s); writing report by report", type(e).__name__)
        for r in batch:
            if not r.done:
                self._write_reports([r])

    def _write_batch(self, batch: list[PendingReport]) -> None:
        acks: list[tuple[PendingReport, ReportAck]] = []

        def acknowledge() -> None:  # once committed (before the audit log is appended: the outbox holds them)
            for r, ack in acks:
                r.finish(ack)

        with self.work() as w:
            w.committed.append(acknowledge)
            with self.store.pipeline(w.session) as raw:  # PostgreSQL: few round trips (see _evaluate)
                changed = self._write_sent(w, batch, acks, raw)
            for rollout_id in changed:
                ro = rollout_sql.rollout(w.session, rollout_id, lock=True)
                assert ro is not None
                rollouts.evaluate(w, ro)

    def _write_sent(
        self, w: Work, batch: list[PendingReport], acks: list[tuple[PendingReport, ReportAck]], raw: Any
    ) -> list[int]:
        """Write the batch's reports (finishing the refused ones); return the rollouts to evaluate."""
        s = w.session
        known, targets = report_sql.report_targets(s, [(r.device_id, r.rollout_id) for r in batch], raw)
        written: list[tuple[PendingReport, tuple[int, str] | None]] = []
        for r in batch:
            target = targets.get((r.device_id, r.rollout_id))
            if r.device_id not in known:
                r.finish(error=NotFound(f"no device {r.device_id}"))
            elif r.rollout_id is not None and target is None:
                where = f"device {r.device_id} is not part of rollout {r.rollout_id}"
                r.finish(error=NotFound(where, field="rollout"))
            else:
                written.append((r, target))
        if not written:
            return []
        moves: list[dict[str, Any]] = []
        evaluate: set[int] = set()
        starts = False  # a device enters an active state: the busy sets grow (else they can only shrink)
        for r, target in written:
            status, reason = r.status, r.reason
            if target is not None and target[1] not in rules.FINAL_STATES and status not in rules.KEY_STATUSES:
                status, reason = _moved(target[1], status, reason, trusted=r.trusted)
                moves.append({"b_id": target[0], "b_state": status, "b_reason": reason, "b_updated": now()})
                if not (target[1] in rules.ACTIVE_STATES and status in rules.ACTIVE_STATES):
                    assert r.rollout_id is not None
                    evaluate.add(r.rollout_id)  # the device's answer and the rollout's counts change
                    starts = starts or status in rules.ACTIVE_STATES
            _audit(w, r, status, reason)
            acks.append((r, ReportAck(device=r.device_id, status=status)))
        report_sql.write_reports(s, [r for r, _ in written], moves)
        return _evaluate(w, evaluate, starts=starts, raw=raw)


def _moved(before: str, status: str, reason: str | None, *, trusted: bool) -> tuple[str, str | None]:
    """The state an assignment moves to on a report (an untrusted confirmation to ``unverified``)."""
    if status == "confirmed" and not trusted:
        return rules.UNVERIFIED, "unverified_report"
    return status, reason


def _evaluate(w: Work, rollout_ids: set[int], *, starts: bool, raw: Any) -> list[int]:
    """Re-evaluate the rollouts whose counts changed, each under its row lock (taken in id order). Moves among
    the active states (downloading → installed → booted) change neither an answer nor a count: no other report
    waits for the rollout's lock then. Assignments that only ended (``starts`` false) let every process keep its
    busy set (:mod:`medfw.server.cache`); a rollout that advances, pauses or finishes moves them all.

    On PostgreSQL (``raw`` in pipeline mode) the batch's writes, the row locks and the counts are sent together
    (one round trip); only a rollout whose counts call for a change is then evaluated through its ORM row (after
    the pipeline). Returns the rollouts to evaluate so, in id order."""
    if not rollout_ids:
        return []
    w.moved, w.ended = starts, not starts
    if raw is None:
        return sorted(rollout_ids)
    found = rollout_sql.locked_counts(raw, sorted(rollout_ids))
    return sorted(i for i, (ro, counts) in found.items() if rollouts.decision(ro, counts) is not Decision.WAIT)


def _audit(w: Work, r: PendingReport, status: str, reason: str | None) -> None:
    w.audit(
        "ota.report",
        "failure" if status in rules.ERROR_STATES else "success",
        f"device:{r.device_id}",
        reason=reason,
        objects={"device": r.device_id, **({"rollout": str(r.rollout_id)} if r.rollout_id is not None else {})},
        data={"status": status, **r.fields, "detail": r.detail, "trusted": r.trusted},
    )
