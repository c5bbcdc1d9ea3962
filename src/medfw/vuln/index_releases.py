"""The index's releases, their scans and the decisions recorded for them (part of :class:`~medfw.vuln.index.VulnIndex`).

Decision rows are only ever appended; a release's SBOM is replaced only by a newer revision of the same serial.
"""

from __future__ import annotations

import datetime as dt
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, insert, select, update

from medfw.vuln.schema import decision, release, release_scan

__all__ = ["ReleaseOps"]


class ReleaseOps(ABC):
    """Releases, scans and decisions over the index's transactions."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Connection]:
        """One transaction (see :meth:`medfw.vuln.index.VulnIndex.transaction`)."""

    # ---- decisions ----------------------------------------------------------------------------------------

    def add_decision(self, row: Mapping[str, Any]) -> int:
        """Append one decision row and return its id (rows are never updated or deleted)."""
        with self.transaction() as conn:
            res = conn.execute(insert(decision).values(**row))
            pk = res.inserted_primary_key
            return int(pk[0]) if pk else 0

    # ---- releases -----------------------------------------------------------------------------------------

    def add_release(self, serial: str, name: str, sha256: str, sbom: bytes) -> tuple[int, bool]:
        """Register an SBOM; return (release id, created). Re-adding the same serial returns the existing id."""
        with self.transaction() as conn:
            row = conn.execute(select(release.c.id).where(release.c.serial == serial)).first()
            if row is not None:
                return int(row.id), False
            res = conn.execute(
                insert(release).values(
                    serial=serial, name=name, sha256=sha256, sbom=sbom, added_at=dt.datetime.now(dt.UTC).isoformat()
                )
            )
            pk = res.inserted_primary_key
            return (int(pk[0]) if pk else 0), True

    def revise_release(self, release_id: int, name: str, sha256: str, sbom: bytes) -> None:
        """Replace a release's SBOM by a newer revision of it (same serial, higher version)."""
        with self.transaction() as conn:
            conn.execute(update(release).where(release.c.id == release_id).values(name=name, sha256=sha256, sbom=sbom))

    def set_retired(self, release_id: int, when: str | None) -> bool:
        """Retire a release from monitoring (or, with None, monitor it again); False if no such release."""
        with self.transaction() as conn:
            res = conn.execute(update(release).where(release.c.id == release_id).values(retired_at=when))
            return bool(res.rowcount)

    def releases(self, *, include_retired: bool = True) -> list[dict[str, Any]]:
        """Return registered releases (id, serial, name, sha256, sbom, added_at, retired_at)."""
        q = select(release).order_by(release.c.id)
        if not include_retired:
            q = q.where(release.c.retired_at.is_(None))
        with self.transaction() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def last_scan(self, release_id: int) -> list[dict[str, Any]] | None:
        """Return the findings summary of the latest scan of a release (None if never scanned)."""
        with self.transaction() as conn:
            q = (
                select(release_scan.c.findings)
                .where(release_scan.c.release_id == release_id)
                .order_by(release_scan.c.id.desc())
                .limit(1)
            )
            row = conn.execute(q).first()
            return None if row is None else list(json.loads(row.findings))

    def scans(self, release_id: int) -> list[dict[str, Any]]:
        """Every scan of a release, oldest first (id, scanned_at, counts, feed; findings summary left out)."""
        q = (
            select(release_scan.c.id, release_scan.c.scanned_at, release_scan.c.counts, release_scan.c.feed)
            .where(release_scan.c.release_id == release_id)
            .order_by(release_scan.c.id)
        )
        with self.transaction() as conn:
            return [
                {
                    "id": int(r.id),
                    "scanned_at": r.scanned_at,
                    "counts": json.loads(r.counts),
                    "feed": json.loads(r.feed),
                }
                for r in conn.execute(q)
            ]

    def add_scan(
        self,
        release_id: int,
        findings: Sequence[Mapping[str, Any]],
        *,
        counts: Mapping[str, Any] | None = None,
        feed: Mapping[str, Any] | None = None,
        when: dt.datetime | None = None,
    ) -> int:
        """Store a scan of a release (findings summary, counts, feed snapshot used); return its id."""
        with self.transaction() as conn:
            res = conn.execute(
                insert(release_scan).values(
                    release_id=release_id,
                    scanned_at=(when or dt.datetime.now(dt.UTC)).isoformat(),
                    findings=json.dumps(list(findings), sort_keys=True),
                    counts=json.dumps(dict(counts or {}), sort_keys=True),
                    feed=json.dumps(dict(feed or {}), sort_keys=True),
                )
            )
            pk = res.inserted_primary_key
            return int(pk[0]) if pk else 0
