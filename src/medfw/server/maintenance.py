"""The server's background task: re-sign the online TUF metadata, record newly published releases, and write
what polling devices reported. Every failure is logged and the pass is retried at the next interval."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import SQLAlchemyError

from medfw.errors import MedfwError
from medfw.server.deps import OnlineKeys
from medfw.server.lease import AuditLease
from medfw.server.ratelimit import SharedLimiter
from medfw.server.service import FleetService
from medfw.update.repository import TufRepository

__all__ = ["Maintenance"]

log = logging.getLogger("medfw.server.maintenance")

_EXPECTED = (MedfwError, OSError, SQLAlchemyError)


class Maintenance:
    """Runs :meth:`run_once` every ``interval`` seconds in a daemon thread.

    Args:
        service: the fleet service.
        repo: the served TUF repository (``None``: nothing to re-sign or sync).
        online_keys: the snapshot/timestamp signers (``None``: metadata is re-signed elsewhere).
        interval: seconds between passes.
        lease: with several server processes, the claim on appending the audit log (taken over when the
            process holding it stops).
    """

    def __init__(
        self,
        service: FleetService,
        repo: TufRepository | None,
        online_keys: OnlineKeys | None,
        *,
        interval: float = 5.0,
        lease: AuditLease | None = None,
    ) -> None:
        self.lease = lease
        self.service = service
        self.repo = repo
        self.online_keys = online_keys
        self.interval = interval
        self._synced: int | None = None  # the targets version whose releases are in the database
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._limiter: SharedLimiter | None = None  # the shared rate limit whose sync thread runs

    def run_once(self) -> None:
        """One pass; each step is attempted even when an earlier one failed."""
        repo, keys = self.repo, self.online_keys
        if repo is not None and keys is not None:
            try:
                if repo.sign_online(keys.snapshot, keys.timestamp):
                    log.info("online TUF metadata re-signed")
            except _EXPECTED as e:
                log.warning("re-signing the online TUF metadata failed: %s", _describe(e))
        if repo is not None:
            try:
                version = repo.targets().signed.version
                if self._synced != version:
                    self.service.sync_releases(repo.releases(), actor="server")
                    self._synced = version
                    log.info("releases recorded from targets metadata v%d", version)
            except _EXPECTED as e:
                log.warning("recording releases failed: %s", _describe(e))
        try:
            self.service.flush_seen()
        except _EXPECTED as e:
            log.warning("writing poll data failed: %s", _describe(e))
        self._audit_pass()

    def _audit_pass(self) -> None:
        """Aggregated refusals into the outbox, then the outbox into the audit log."""
        try:
            self.service.flush_denied()
            if self.lease is not None and not self.service.drainer:
                sink = self.lease.try_claim()
                if sink is not None:
                    self.service.set_sink(sink)
                    log.info("this process now appends the audit log")
            drained = self.service.drain_outbox()
            if drained:
                log.debug("appended %d outbox events to the audit log", drained)
        except _EXPECTED as e:
            log.warning("writing the audit trail failed (kept in the outbox): %s", _describe(e))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("maintenance pass failed")

    def start(self) -> None:
        """Run a first pass now, then start the background thread (and the shared rate limit's)."""
        self.run_once()
        if isinstance(self.service.limiter, SharedLimiter):
            self._limiter = self.service.limiter
            self._limiter.start()
        self._thread = threading.Thread(target=self._loop, name="medfw-ota-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write the last poll data."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._limiter is not None:
            self._limiter.stop()
            self._limiter = None
        try:
            self.service.flush_seen()
        except _EXPECTED as e:
            log.warning("writing poll data at shutdown failed: %s", _describe(e))
        self._audit_pass()


def _describe(e: BaseException) -> str:
    return e.diagnostics() if isinstance(e, MedfwError) else f"{type(e).__name__}: {e}"
