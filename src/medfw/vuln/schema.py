"""The vulnerability index's tables (SQLAlchemy Core); the Alembic migrations in ``vuln/migrations`` create them.

* ``vuln_record`` — one normalized record per (source, record id), with what matching and triage need stored
  pre-parsed beside it; sources are kept apart (``nvd``,
  ``nvd-override``, ``cve5-cna``, ``cve5-adp``, ``vendor``, ``osv``), so importing one never replaces another;
* ``vuln_match`` — what matching needs, flat and indexed by lookup key (``cpe:<vendor>:<product>``,
  ``purl:<base>``): per record one row per vulnerable criterion with pre-normalised version bounds, or one row per
  key for records evaluated as a whole (see :mod:`medfw.vuln.match_rows`); its lookup index holds the columns a
  scan filters on, so rows whose bounds cannot hold are never read from the table;
* ``kev``, ``epss`` — triage data by CVE id;
* ``decision`` — append-only decision history;
* ``release``, ``release_scan`` — registered SBOMs (retired ones stay, flagged) and every scan of them (counts,
  the findings summary, the feed snapshot used);
* ``alert`` — risk changes found by rescans; open until a decision or an acknowledgement closes them;
* ``feed_state`` — per source: last successful update, record count, catalog/model version, data date and the
  sync cursor (resumable syncs);
* ``import_log`` — one row per imported file or fetched page with its counts.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, LargeBinary, MetaData, SmallInteger, String, Table, Text

from medfw.vuln.scan_sql import HEAD, VERSION_TABLE

__all__ = [
    "HEAD",
    "VERSION_TABLE",
    "alert",
    "decision",
    "epss",
    "feed_state",
    "import_log",
    "kev",
    "metadata",
    "release",
    "release_scan",
    "vuln_match",
    "vuln_record",
]

metadata = MetaData()
vuln_record = Table(
    "vuln_record",
    metadata,
    Column("rid", String(300), primary_key=True),
    Column("source", String(32), nullable=False),
    Column("record_id", String(200), nullable=False),
    Column("vuln_id", String(200), nullable=False, index=True),
    Column("modified", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("has_config", Boolean, nullable=False),
    Column("data", LargeBinary, nullable=False),
    # what a whole-record evaluation needs (configurations or OSV entries; NULL for records decided by their
    # vuln_match rows alone, and in rows imported before revision 0003), and what triage needs (pre-scored CVSS
    # entries, ratings, SSVC, aliases, description; NULL before revision 0003)
    Column("match", LargeBinary),
    Column("triage", LargeBinary),
)
vuln_match = Table(
    "vuln_match",
    metadata,
    Column("key", String(400), nullable=False),
    Column("rid", String(300), nullable=False, index=True),
    Column("vuln_id", String(200), nullable=False),
    Column("source", String(32), nullable=False),
    Column("ord", Integer, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("part", String(1)),
    Column("criterion", Text),
    Column("bound", Text),
    Column("exact", String(200)),
    Column("exact_key", LargeBinary),
    Column("lo", LargeBinary),
    Column("lo_incl", Boolean, nullable=False),
    Column("hi", LargeBinary),
    Column("hi_incl", Boolean, nullable=False),
    Column("attrs", Text),
    # the scan's lookup: by key, filtered on kind and version bounds inside the index (revision 0006)
    Index("ix_vuln_match_lookup", "key", "kind", "exact_key", "lo", "lo_incl", "hi", "hi_incl", "exact"),
)
kev = Table(
    "kev",
    metadata,
    Column("cve_id", String(64), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("data", Text, nullable=False),
)
epss = Table(
    "epss",
    metadata,
    Column("cve_id", String(64), primary_key=True),
    Column("epss", Float, nullable=False),
    Column("percentile", Float, nullable=False),
    Column("score_date", String(64), nullable=False),
)
decision = Table(
    "decision",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("serial", String(200), nullable=False, index=True),
    Column("component_ref", String(1000), nullable=False),
    Column("vuln_id", String(200), nullable=False),
    Column("state", String(64), nullable=False),
    Column("justification", String(64)),
    Column("responses", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("author", String(200), nullable=False),
    Column("created_at", String(64), nullable=False),
    Column("source", String(32), nullable=False),
)
release = Table(
    "release",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("serial", String(200), nullable=False, unique=True),
    Column("name", String(400), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("sbom", LargeBinary, nullable=False),
    Column("added_at", String(64), nullable=False),
    Column("retired_at", String(64)),
)
release_scan = Table(
    "release_scan",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("release_id", Integer, nullable=False, index=True),
    Column("scanned_at", String(64), nullable=False),
    Column("findings", Text, nullable=False),
    Column("counts", Text, nullable=False, server_default="{}"),
    Column("feed", Text, nullable=False, server_default="{}"),
)
import_log = Table(
    "import_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("counts", Text, nullable=False),
)
feed_state = Table(
    "feed_state",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("updated_at", String(64), nullable=False),
    Column("method", String(16), nullable=False),
    Column("location", Text, nullable=False),
    Column("records", Integer, nullable=False),
    Column("version", String(200), nullable=False),
    Column("data_date", String(64), nullable=False),
    Column("cursor", Text, nullable=False),
)
alert = Table(
    "alert",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("release_id", Integer, nullable=False, index=True),
    Column("component_ref", String(1000), nullable=False),
    Column("vuln_id", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("opened_at", String(64), nullable=False),
    Column("scan_id", Integer, nullable=False),
    Column("closed_at", String(64)),
    Column("closed_by", String(200)),
    Column("close_reason", Text),
)
