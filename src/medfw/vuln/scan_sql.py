"""The plain SQL of a scan's reads: the one place their table and column names are written down.

A scan reads the index on the driver's cursor (:func:`medfw.vuln.dbio.driver_rows`), without SQLAlchemy's
statement compilation, and a scan of a SQLite index without loading SQLAlchemy at all
(:mod:`medfw.vuln.scan_index`). The tables themselves are defined by the SQLAlchemy schema
(:mod:`medfw.vuln.schema`, :mod:`medfw.vuln.decision_scope_table`, :mod:`medfw.vuln.supplier`) and created by the
migrations; a test checks every name here against those definitions, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "COLUMNS",
    "EPSS_SQL",
    "HEAD",
    "KEV_SQL",
    "MATCH_KEYS_SQL",
    "TREE_SQL",
    "TRIAGE_SQL",
    "VERSION_TABLE",
    "Table",
    "select_all",
]

#: the newest Alembic revision shipped (a test checks it against the migration scripts)
HEAD = "0006"
#: the Alembic version table of the index (its own name: the index may share a database with the server)
VERSION_TABLE = "medfw_vuln_alembic_version"


class Table:
    """The names of the tables a scan reads."""

    RECORD = "vuln_record"
    MATCH = "vuln_match"
    KEV = "kev"
    EPSS = "epss"
    DECISION = "decision"
    DECISION_SCOPE = "decision_scope"
    FEED_STATE = "feed_state"
    SUPPLIER_DOCUMENT = "supplier_document"
    SUPPLIER_STATEMENT = "supplier_statement"


#: the columns read of each table (whole rows for the tables read as dicts)
COLUMNS: Mapping[str, tuple[str, ...]] = {
    Table.RECORD: ("rid", "source", "record_id", "vuln_id", "has_config", "match", "triage", "data"),
    Table.MATCH: (
        "key",
        "rid",
        "vuln_id",
        "source",
        "ord",
        "kind",
        "criterion",
        "bound",
        "part",
        "exact",
        "exact_key",
        "lo",
        "lo_incl",
        "hi",
        "hi_incl",
        "attrs",
    ),
    Table.KEV: ("cve_id", "data"),
    Table.EPSS: ("cve_id", "epss", "percentile"),
    Table.DECISION: (
        "id",
        "serial",
        "component_ref",
        "vuln_id",
        "state",
        "justification",
        "responses",
        "detail",
        "author",
        "created_at",
        "source",
    ),
    Table.DECISION_SCOPE: (
        "decision_id",
        "identities",
        "version",
        "applies_to",
        "fixed_in",
        "carried_from_release",
        "carried_from_decision",
    ),
    Table.FEED_STATE: ("source", "updated_at", "method", "location", "records", "version", "data_date", "cursor"),
    Table.SUPPLIER_DOCUMENT: (
        "id",
        "sha256",
        "format",
        "doc_id",
        "publisher",
        "supplier",
        "doc_date",
        "path",
        "imported_at",
    ),
    Table.SUPPLIER_STATEMENT: ("id", "document_id", "vuln_id", "product", "analysis"),
}

_R = Table.RECORD
#: the scan's reads (:func:`medfw.vuln.dbio.driver_rows_in` appends ``IN (…)``)
TREE_SQL = 'SELECT rid, source, record_id, vuln_id, "match", CASE WHEN "match" IS NULL THEN data END'
TREE_SQL += f" FROM {_R} WHERE rid"
TRIAGE_SQL = "SELECT source, record_id, vuln_id, has_config, triage, CASE WHEN triage IS NULL THEN data END"
TRIAGE_SQL += f" FROM {_R} WHERE vuln_id"
KEV_SQL = f"SELECT cve_id, data FROM {Table.KEV} WHERE cve_id"  # noqa: S608 - constants only
EPSS_SQL = f"SELECT cve_id, epss, percentile FROM {Table.EPSS} WHERE cve_id"  # noqa: S608 - constants only
MATCH_KEYS_SQL = f'SELECT DISTINCT "key" FROM {Table.MATCH} WHERE "key"'  # noqa: S608 - constants only


def select_all(table: str, *, order: str = "", where: str = "", mark: str = "?") -> str:
    """``SELECT`` of every column of ``table`` (in :data:`COLUMNS` order), optionally restricted to rows whose
    column ``where`` equals one parameter (``mark``: the driver's marker) and ordered by the column ``order``."""
    cols = ", ".join(f'"{c}"' for c in COLUMNS[table])
    sql = f'SELECT {cols} FROM "{table}"'  # noqa: S608 - constants only
    if where:
        sql += f' WHERE "{where}" = {mark}'
    return f'{sql} ORDER BY "{order}"' if order else sql
