"""What a scan reads of the index, in plain SQL on the driver's cursor (part of every index: the SQLAlchemy one,
:class:`~medfw.vuln.index.VulnIndex`, and the plain SQLite one a scan opens, :mod:`medfw.vuln.scan_index`).

The statements are those of :mod:`medfw.vuln.scan_sql`. Nothing here loads SQLAlchemy.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

import orjson

from medfw.vuln.dbio import driver_rows, driver_rows_in, has_table, placeholder
from medfw.vuln.prepared import loads
from medfw.vuln.scan_sql import COLUMNS, EPSS_SQL, KEV_SQL, TREE_SQL, TRIAGE_SQL, Table, select_all

__all__ = ["ScanReads", "StoredRecord", "unpack"]


class StoredRecord(NamedTuple):
    """A record as stored: source, ids, and its normalized data (a tuple: a scan builds tens of thousands)."""

    source: str
    record_id: str
    vuln_id: str
    data: Mapping[str, Any]


def unpack(blob: bytes) -> dict[str, Any]:
    """A stored record's data (zlib-compressed canonical JSON)."""
    out: dict[str, Any] = orjson.loads(zlib.decompress(blob))
    return out


class ScanReads:
    """The reads of a scan over :meth:`transaction` (a connection the :mod:`medfw.vuln.dbio` driver helpers take)."""

    def transaction(self) -> AbstractContextManager[Any]:
        """One transaction (implemented by each index)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the database connections (implemented by each index)."""
        raise NotImplementedError

    def tree_records(self, rids: Iterable[str]) -> dict[str, StoredRecord]:
        """Load the whole-record match data of records by rid (``data`` = :func:`medfw.vuln.prepared.match_data`)."""
        out: dict[str, StoredRecord] = {}
        with self.transaction() as conn:
            for rid, source, record_id, vuln_id, match, full in driver_rows_in(conn, TREE_SQL, rids):
                data = loads(match) if match is not None else unpack(full)
                out[rid] = StoredRecord(source, record_id, vuln_id, data)
        return out

    def triage_and_configured(
        self, vuln_ids: Iterable[str]
    ) -> tuple[dict[str, list[StoredRecord]], dict[str, set[str]]]:
        """Load what triage needs of every record of each vulnerability (``data`` = ``prepared.triage_data``), and
        per vulnerability the sources of its records that carry configurations (one read: a scan needs both)."""
        out: dict[str, list[StoredRecord]] = {}
        configured: dict[str, set[str]] = {}
        with self.transaction() as conn:
            rows = driver_rows_in(conn, TRIAGE_SQL, vuln_ids)
        for source, record_id, vuln_id, has_config, blob, full in rows:
            data = loads(blob) if blob is not None else unpack(full)
            rec = StoredRecord(source, record_id, vuln_id, data)
            if vuln_id in out:
                out[vuln_id].append(rec)
            else:
                out[vuln_id] = [rec]
            if has_config:
                configured.setdefault(vuln_id, set()).add(source)
        return out, configured

    def kev_for(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Return KEV entries for the ids that are in the catalog."""
        with self.transaction() as conn:
            return {cve_id: json.loads(data) for cve_id, data in driver_rows_in(conn, KEV_SQL, ids)}

    def epss_for(self, ids: Iterable[str]) -> dict[str, tuple[float, float]]:
        """Return (epss, percentile) for the ids that have a score."""
        with self.transaction() as conn:
            return {cve_id: (float(e), float(p)) for cve_id, e, p in driver_rows_in(conn, EPSS_SQL, ids)}

    def table_rows(self, table: str, *, order: str = "", where: str = "", value: Any = None) -> list[dict[str, Any]]:
        """Every row of ``table`` (one of :class:`medfw.vuln.scan_sql.Table`) as a dict of its columns, optionally
        only those whose column ``where`` equals ``value``, ordered by ``order``; none when the table does not
        exist yet (a read never creates it)."""
        cols = COLUMNS[table]
        with self.transaction() as conn:
            if not has_table(conn, table):
                return []
            sql = select_all(table, order=order, where=where, mark=placeholder(conn))
            rows = driver_rows(conn, [(sql, (value,) if where else ())])
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def decision_rows(self, serial: str | None = None) -> list[dict[str, Any]]:
        """Return every decision row (for ``serial``, or all), oldest first."""
        if serial is None:
            return self.table_rows(Table.DECISION, order="id")
        return self.table_rows(Table.DECISION, order="id", where="serial", value=serial)
