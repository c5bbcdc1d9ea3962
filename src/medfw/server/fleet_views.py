"""Fleet-wide reads (fleet counts, device search, rollout progress) and release documents, as service calls.

The console pages and the management API call the same methods; each returns frozen read models
(:mod:`medfw.server.views_fleet`) and runs its SQL through :mod:`medfw.server.store_views`. Attaching a
document is a unit of work with its audit event, like every other state change.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from medfw.server import store_views as sql
from medfw.server.base import ServiceBase
from medfw.server.documents import check_document, filename_of, media_type_of
from medfw.server.errors import Invalid, NotFound
from medfw.server.rows import release_view
from medfw.server.views import ReleaseView, ReportView
from medfw.server.views_fleet import (
    AssignmentRow,
    DeviceDetail,
    DeviceFilter,
    DevicePage,
    DocumentKind,
    FleetSummary,
    ReleaseDocument,
    RolloutHeader,
    RolloutProgress,
    RolloutSummary,
)
from medfw.server.work import now

__all__ = ["DEVICE_PAGE_SIZE", "ROLLOUT_PAGE_SIZE", "FleetViewOps"]

DEVICE_PAGE_SIZE = 50
ROLLOUT_PAGE_SIZE = 20


class FleetViewOps(ServiceBase):
    """Read models over the whole fleet, and the documents of releases (part of the fleet service)."""

    def fleet_summary(self, *, stale_hours: int = 24, at: datetime | None = None) -> FleetSummary:
        """Devices per model × version × group, how many were not seen for ``stale_hours``, and failures."""
        self._flush()  # what polling devices reported (no statement when nothing is pending)
        with self.sessions() as s:
            return sql.fleet_summary(s, stale_hours=stale_hours, now=at or now())

    def paused_by_errors(self) -> int:
        """How many rollouts the error threshold paused."""
        with self.sessions() as s:
            return sql.paused_by_errors(s)

    def device_page(self, f: DeviceFilter, *, page: int = 1, size: int = DEVICE_PAGE_SIZE) -> DevicePage:
        """Devices matching ``f``, one page ordered by id."""
        self._flush()
        with self.sessions() as s:
            return sql.device_page(s, f, page=page, size=max(1, min(size, 500)), now=now())

    def device_facets(self) -> dict[str, tuple[str, ...]]:
        """The models, groups and versions present (the choices of a device search)."""
        with self.sessions() as s:
            return sql.facets(s)

    def device_detail(self, device_id: str) -> DeviceDetail:
        """One device with when it was registered.

        Raises:
            NotFound: no such device.
        """
        with self.sessions() as s:
            dev = sql.device_detail(s, device_id)
        if dev is None:
            raise NotFound(f"no device {device_id}", field="device")
        return dev

    def device_assignments(self, device_id: str) -> list[AssignmentRow]:
        """A device's place in every rollout, newest first."""
        with self.sessions() as s:
            return sql.device_assignments(s, device_id)

    def device_reports(self, device_id: str, *, limit: int = 200) -> list[ReportView]:
        """A device's reports, newest first."""
        with self.sessions() as s:
            return sql.device_reports(s, device_id, limit=max(1, min(limit, 1000)))

    def rollout_header(self, rollout_id: int) -> RolloutHeader:
        """A rollout's settings and release.

        Raises:
            NotFound: no such rollout.
        """
        with self.sessions() as s:
            head = sql.rollout_header(s, rollout_id)
        if head is None:
            raise NotFound(f"no rollout {rollout_id}", field="rollout")
        return head

    def rollout_progress(self, rollout_id: int, phase_count: int) -> RolloutProgress:
        """A rollout's devices per phase and state, failure reasons grouped (one statement).

        Raises:
            NotFound: no such rollout.
        """
        with self.sessions() as s:
            progress = sql.rollout_progress(s, rollout_id, phase_count)
        if progress is None:
            raise NotFound(f"no rollout {rollout_id}", field="rollout")
        return progress

    def rollout_summaries(self, *, state: str = "", page: int = 1) -> tuple[list[RolloutSummary], int]:
        """One page of rollouts, newest first, with their devices counted by state; and the number of pages."""
        with self.sessions() as s:
            return sql.rollout_summaries(s, state=state, page=page, size=ROLLOUT_PAGE_SIZE)

    def _flush(self) -> None:
        flush = getattr(self, "flush_seen", None)  # the poll side of the service (DeviceOps) batches last-seen data
        if flush is not None:
            flush()

    # ---- release documents ---------------------------------------------------------------------------------

    def release_by_id(self, release_id: int) -> ReleaseView:
        """One release.

        Raises:
            NotFound: no such release.
        """
        with self.sessions() as s:
            row = self.store.release(s, release_id)
            rel = None if row is None else release_view(row)
        if rel is None:
            raise NotFound(f"no release {release_id}", field="release")
        return rel

    def release_documents(self, release_id: int) -> list[ReleaseDocument]:
        """The documents attached to a release."""
        with self.sessions() as s:
            return sql.documents(s, release_id)

    def document_kinds(self) -> dict[int, list[DocumentKind]]:
        """Which kinds of document each release has."""
        with self.sessions() as s:
            return sql.document_kinds(s)

    def release_document(self, release_id: int, kind: DocumentKind) -> tuple[ReleaseDocument, bytes]:
        """A release's document and its bytes.

        Raises:
            NotFound: the release has no document of that kind.
        """
        with self.sessions() as s:
            found = sql.document_content(s, release_id, kind)
        if found is None:
            raise NotFound(f"release {release_id} has no {kind} document", field="kind")
        return found

    def attach_document(self, release_id: int, kind: DocumentKind, data: bytes, *, actor: str) -> ReleaseDocument:
        """Check and store a document of a release (replacing one of the same kind), audited as ``release.document``.

        Raises:
            NotFound: no such release.
            Invalid: the document is not a valid document of that kind, or a signature comes before its CSAF.
        """
        rel = self.release_by_id(release_id)
        summary = check_document(kind, data, release_version=rel.version)
        digest = hashlib.sha256(data).hexdigest()
        doc = ReleaseDocument(
            release_id=rel.id,
            kind=kind,
            filename=filename_of(kind, rel.version),
            media_type=media_type_of(kind),
            sha256=digest,
            size=len(data),
            attached=now(),
            attached_by=actor,
            summary=summary,
        )
        with self.work() as w:
            signs = kind == DocumentKind.CSAF_SIGNATURE
            if signs and sql.document_content(w.session, rel.id, DocumentKind.CSAF) is None:
                raise Invalid("attach the CSAF advisory before its signature", field="kind")
            replaced = sql.put_document(w.session, doc, data)
            if kind == DocumentKind.CSAF and replaced:
                sql.delete_document(w.session, rel.id, DocumentKind.CSAF_SIGNATURE)  # it signed the old advisory
            w.audit(
                "release.document",
                "success",
                actor,
                objects={"release": rel.target_path},
                data={"kind": kind.value, "sha256": digest, "size": len(data), "replaced": replaced, **summary},
            )
        return doc
