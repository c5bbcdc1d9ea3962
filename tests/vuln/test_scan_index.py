"""The index as a scan opens it: a SQLite index read with plain SQL on ``sqlite3`` (no SQLAlchemy loaded, nothing
written), reading what the SQLAlchemy index reads; the plain statements checked against the SQLAlchemy schema."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from medfw.audit.sink import MemorySink
from medfw.vuln import record_decision, scan, scanner
from medfw.vuln.carryover import register_release
from medfw.vuln.decision_scope import load_scopes
from medfw.vuln.decision_scope_table import metadata as scope_metadata
from medfw.vuln.freshness import feed_states
from medfw.vuln.index import VulnIndex
from medfw.vuln.match_store import MatchRow
from medfw.vuln.sbom_input import read_sbom
from medfw.vuln.scan_index import PlainIndex, open_scan_index
from medfw.vuln.scan_reads import ScanReads
from medfw.vuln.scan_sql import COLUMNS, Table
from medfw.vuln.schema import metadata
from medfw.vuln.supplier import metadata as supplier_metadata
from medfw.vuln.supplier_query import supplier_statements

from .test_carryover import MBEDTLS, release_sbom
from .test_supplier import OPENVEX, _import

CURL = {"bom-ref": "curl", "name": "curl", "version": "8.4.0", "cpe": "cpe:2.3:a:haxx:curl:8.4.0:*:*:*:*:*:*:*"}
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
#: the tables read as whole rows (dicts of every column)
WHOLE = (Table.DECISION, Table.DECISION_SCOPE, Table.FEED_STATE, Table.SUPPLIER_DOCUMENT, Table.SUPPLIER_STATEMENT)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_plain_statements_name_the_schema_tables_and_columns() -> None:
    tables = {t.name: t for md in (metadata, scope_metadata, supplier_metadata) for t in md.sorted_tables}
    for name, cols in COLUMNS.items():
        assert name in tables, name
        assert set(cols) <= {c.name for c in tables[name].columns}, name
    for name in WHOLE:
        assert COLUMNS[name] == tuple(c.name for c in tables[name].columns), name
    assert {v for k, v in vars(Table).items() if k.isupper()} == set(COLUMNS)
    assert COLUMNS[Table.MATCH][:8] == MatchRow._fields[:8]


def _reads(index: ScanReads, sbom: bytes) -> dict[str, object]:
    result = scanner.scan(index, read_sbom(sbom), now=NOW)
    return {
        "scan": result.as_dict(),
        "decisions": index.decision_rows(),
        "scopes": load_scopes(index),
        "feed": [s.as_dict(NOW) for s in feed_states(index)],
        "supplier": supplier_statements(index, sboms=[(1, result.sbom)]),
    }


def test_plain_index_reads_what_the_sqlalchemy_index_reads(full_index: VulnIndex) -> None:
    sink = MemorySink()
    sbom = release_sbom("3.5.1", fw_version="1.0.0")
    _, r1, _, _ = register_release(full_index, sbom, sink=sink)
    register_release(full_index, release_sbom("3.6.4", fw_version="1.1.0"), sink=sink)
    _import(full_index, OPENVEX, "supplier.openvex.json", accept=True)
    vuln = next(f.vuln_id for f in scan(full_index, r1).findings if f.component_ref == MBEDTLS and f.decision is None)
    record_decision(full_index, r1, vuln, MBEDTLS, state="in_triage", detail="looking", author="user:a", sink=sink)
    expected = _reads(full_index, sbom)
    assert expected["decisions"] and expected["scopes"] and expected["supplier"] and expected["feed"]
    plain = open_scan_index(full_index.url)
    try:
        assert isinstance(plain, PlainIndex)
        assert _reads(plain, sbom) == expected
    finally:
        plain.close()


def test_sqlite_scan_process_loads_no_sqlalchemy_and_writes_nothing(
    full_index: VulnIndex, tmp_path: Path, sbom_factory: Callable[..., bytes]
) -> None:
    sbom = tmp_path / "s.cdx.json"
    sbom.write_bytes(sbom_factory([CURL]))
    r = scan(full_index, sbom).sbom
    record_decision(
        full_index, r, "CVE-2024-2398", "curl", state="in_triage", detail="x", author="a", sink=MemorySink()
    )
    db = Path(full_index.url)
    full_index.close()
    before = _sha(db)
    out = tmp_path / "r.json"
    code = (
        "import sys\nfrom medfw.cli import main\n"
        f"rc = main(['vuln', 'scan', {str(sbom)!r}, '--db', {str(db)!r}, '--format', 'json', '--out', {str(out)!r}])\n"
        "print(rc, 'sqlalchemy' in sys.modules, 'alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.split() == ["0", "False", "False"], done.stderr
    assert '"in_triage"' in out.read_text()
    assert _sha(db) == before


def test_tables_not_created_yet_read_as_empty_and_stay_missing(full_index: VulnIndex) -> None:
    db = Path(full_index.url)
    full_index.close()
    with sqlite3.connect(db) as conn:
        conn.executescript("DROP TABLE decision_scope; DROP TABLE supplier_statement; DROP TABLE supplier_document;")
    plain = open_scan_index(str(db))
    try:
        assert isinstance(plain, PlainIndex)
        assert load_scopes(plain) == {}
        assert supplier_statements(plain, sboms=[]) == []
    finally:
        plain.close()
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not names & {"decision_scope", "supplier_statement", "supplier_document"}


def test_an_index_to_create_or_migrate_is_opened_by_sqlalchemy(tmp_path: Path) -> None:
    new, bare = tmp_path / "new.db", tmp_path / "bare.db"
    with sqlite3.connect(bare) as conn:  # a SQLite file without the index's tables: migrated on open
        conn.execute("CREATE TABLE other (x)")
    for path in (new, bare):
        index = open_scan_index(str(path))
        try:
            assert isinstance(index, VulnIndex)
        finally:
            index.close()
        plain = open_scan_index(str(path))  # now at the newest revision
        try:
            assert isinstance(plain, PlainIndex)
        finally:
            plain.close()
