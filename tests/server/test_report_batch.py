"""The report queue: posted reports are written by the queue's own writer threads, which notify each once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from medfw.server.report_batch import PendingReport, ReportQueue
from medfw.server.views import ReportAck


def _pending(device_id: str, notify: threading.Event | None = None) -> PendingReport:
    return PendingReport(
        device_id=device_id,
        status="downloading",
        reason=None,
        detail=None,
        rollout_id=None,
        fields={},
        trusted=True,
        when=datetime.now(UTC),
        polled=None,
        notify=None if notify is None else notify.set,
    )


def test_posted_reports_are_written_in_batches_and_notified() -> None:
    batches: list[list[str]] = []
    gate = threading.Event()

    def write(batch: list[PendingReport]) -> None:
        gate.wait(10)
        batches.append([r.device_id for r in batch])
        for r in batch:
            if r.device_id == "bad":
                r.finish(error=ValueError("refused"))
            else:
                r.finish(ReportAck(device=r.device_id, status=r.status))

    queue = ReportQueue(write, writers=1)
    events = {d: threading.Event() for d in ("a", "b", "bad", "a2")}
    reports = {d: _pending("a" if d == "a2" else d, events[d]) for d in events}
    for d in ("a", "b", "bad", "a2"):
        queue.post(reports[d])
    gate.set()
    assert all(e.wait(10) for e in events.values())
    assert reports["a"].outcome().device == "a" and reports["b"].outcome().status == "downloading"
    assert isinstance(reports["bad"].error, ValueError)  # its own error; the others are acknowledged
    assert reports["a2"].outcome().device == "a"  # a device's reports in order, never two in one batch
    assert all(len(set(b)) == len(b) for b in batches) and sum(map(len, batches)) == 4


def test_a_blocking_submit_and_posted_reports_share_the_writers() -> None:
    def write(batch: list[PendingReport]) -> None:
        for r in batch:
            r.finish(ReportAck(device=r.device_id, status=r.status))

    queue = ReportQueue(write, writers=1)
    posted = threading.Event()
    queue.post(_pending("p", posted))
    assert queue.submit(_pending("s")).device == "s"
    assert posted.wait(10)


def test_wait_idle_returns_once_the_writer_has_finished_what_follows_the_acknowledgement() -> None:
    acknowledged, after_ack, appended = threading.Event(), threading.Event(), []

    def write(batch: list[PendingReport]) -> None:
        for r in batch:
            r.finish(ReportAck(device=r.device_id, status=r.status))  # the answer goes out here ...
        after_ack.wait(10)  # ... while the writer still appends the committed audit events
        appended.extend(r.device_id for r in batch)

    queue = ReportQueue(write, writers=1)
    assert queue.wait_idle(0)  # nothing queued or written
    queue.post(_pending("d1", acknowledged))
    assert acknowledged.wait(10)
    assert not queue.wait_idle(0.05)  # acknowledged, not yet idle
    after_ack.set()
    assert queue.wait_idle(10)
    assert appended == ["d1"]
