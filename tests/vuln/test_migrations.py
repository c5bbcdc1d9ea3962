"""The vulnerability index schema: Alembic migrations on SQLite and PostgreSQL, adoption of pre-Alembic indexes,
and the one database-URL convention."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from medfw.dburl import parse_db_url, redact
from medfw.errors import StorageError, UsageError
from medfw.vuln import import_feeds, open_index
from medfw.vuln.decision_scope_table import metadata as scope_metadata
from medfw.vuln.freshness import feed_states
from medfw.vuln.schema import HEAD, VERSION_TABLE, metadata
from medfw.vuln.supplier import metadata as supplier_metadata

V = Path(__file__).parent.parent / "vectors" / "vuln"
PG = os.environ.get("MEDFW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MIGRATIONS = Path(__file__).parents[2] / "src/medfw/vuln/migrations"


def test_head_constant_matches_the_migration_scripts() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD


def _columns(url: str, schema: str | None = None) -> dict[str, set[str]]:
    engine = create_engine(url)
    insp = inspect(engine)
    out = {t: {c["name"] for c in insp.get_columns(t, schema=schema)} for t in insp.get_table_names(schema=schema)}
    engine.dispose()
    return out


def test_sqlite_schema_equals_the_metadata(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    open_index(str(db)).close()
    cols = _columns(f"sqlite:///{db}")
    tables = [*metadata.sorted_tables, *scope_metadata.sorted_tables, *supplier_metadata.sorted_tables]
    expected = {t.name: {c.name for c in t.columns} for t in tables}
    assert {k: v for k, v in cols.items() if k != VERSION_TABLE} == expected
    with sqlite3.connect(db) as conn:
        assert conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone() == (HEAD,)


def test_pre_alembic_index_is_adopted_and_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the tables as create_all made them before versioned migrations
        conn.executescript(
            """
            CREATE TABLE vuln_record (rid VARCHAR(300) PRIMARY KEY, source VARCHAR(32) NOT NULL,
              record_id VARCHAR(200) NOT NULL, vuln_id VARCHAR(200) NOT NULL, modified VARCHAR(64) NOT NULL,
              content_hash VARCHAR(64) NOT NULL, has_config BOOLEAN NOT NULL, data BLOB NOT NULL);
            CREATE TABLE vuln_key (id INTEGER PRIMARY KEY AUTOINCREMENT, rid VARCHAR(300) NOT NULL,
              key VARCHAR(400) NOT NULL);
            CREATE TABLE kev (cve_id VARCHAR(64) PRIMARY KEY, content_hash VARCHAR(64) NOT NULL, data TEXT NOT NULL);
            CREATE TABLE epss (cve_id VARCHAR(64) PRIMARY KEY, epss FLOAT NOT NULL, percentile FLOAT NOT NULL,
              score_date VARCHAR(64) NOT NULL);
            CREATE TABLE decision (id INTEGER PRIMARY KEY, serial VARCHAR(200) NOT NULL, component_ref VARCHAR(1000)
              NOT NULL, vuln_id VARCHAR(200) NOT NULL, state VARCHAR(64) NOT NULL, justification VARCHAR(64),
              responses TEXT NOT NULL, detail TEXT NOT NULL, author VARCHAR(200) NOT NULL,
              created_at VARCHAR(64) NOT NULL, source VARCHAR(32) NOT NULL);
            CREATE TABLE release (id INTEGER PRIMARY KEY, serial VARCHAR(200) NOT NULL UNIQUE, name VARCHAR(400)
              NOT NULL, sha256 VARCHAR(64) NOT NULL, sbom BLOB NOT NULL, added_at VARCHAR(64) NOT NULL);
            CREATE TABLE release_scan (id INTEGER PRIMARY KEY, release_id INTEGER NOT NULL,
              scanned_at VARCHAR(64) NOT NULL, findings TEXT NOT NULL);
            CREATE TABLE import_log (id INTEGER PRIMARY KEY, at VARCHAR(64) NOT NULL, kind VARCHAR(32) NOT NULL,
              path TEXT NOT NULL, counts TEXT NOT NULL);
            INSERT INTO release VALUES (1, 'urn:uuid:1', 'old', 'x', X'7B7D', '2026-01-01T00:00:00+00:00');
            INSERT INTO release_scan VALUES (1, 1, '2026-01-01T00:00:00+00:00', '[]');
            """
        )
    index = open_index(str(db))
    assert [s["counts"] for s in index.scans(1)] == [{}]  # old rows survive, new columns get their default
    assert index.releases()[0]["retired_at"] is None
    index.close()
    assert "retired_at" in _columns(f"sqlite:///{db}")["release"]


def test_failed_open_leaves_no_empty_database_file(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        open_index(str(tmp_path / "missing-dir" / "v.db"))
    assert not (tmp_path / "missing-dir").exists()
    bad = tmp_path / "not-a-db.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="cannot open the vulnerability database"):
        open_index(str(bad))
    assert bad.read_bytes() == b"this is not sqlite" * 100  # an existing file is never removed


def test_database_url_convention() -> None:
    assert parse_db_url("medfw-vuln.db").sqlalchemy == "sqlite:///medfw-vuln.db"
    assert parse_db_url("sqlite:////var/lib/v.db").dialect == "sqlite"
    pg = parse_db_url("postgres://u:pw@db.example/medfw?schema=vuln_a&sslmode=require")
    assert (pg.sqlalchemy, pg.schema) == ("postgresql+psycopg://u:pw@db.example/medfw?sslmode=require", "vuln_a")
    assert pg.display == "postgres://u:***@db.example/medfw?schema=vuln_a&sslmode=require"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(UsageError, match="plain lowercase"):
        parse_db_url("postgresql://h/db?schema=Robert');DROP")
    with pytest.raises(UsageError, match="sqlite:///PATH or postgresql"):
        parse_db_url("mysql://h/db")


@pytest.fixture
def pg_url() -> Iterator[str]:
    schema = f"v_{uuid.uuid4().hex[:12]}"
    yield f"{PG}?schema={schema}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.postgres
def test_postgresql_migrations_import_and_scan(pg_url: str, sbom_factory: object) -> None:
    index = open_index(pg_url)
    import_feeds(
        index,
        nvd=[str(V / "custom/heartbleed-nvd-api-2.0.json")],
        kev=[str(V / "kev/known_exploited_vulnerabilities.json")],
    )
    index.close()
    index = open_index(pg_url)  # at head: opening again runs no migration
    from medfw.vuln import scan

    comps = [{"bom-ref": "o", "name": "openssl", "version": "1.0.1f", "purl": "pkg:generic/openssl@1.0.1f"}]
    result = scan(index, sbom_factory(comps))  # type: ignore[operator]
    assert [(f.vuln_id, f.kev) for f in result.findings] == [("CVE-2014-0160", True)]
    assert {s.source for s in feed_states(index)} == {"nvd", "kev"}
    index.close()
    schema = parse_db_url(pg_url).schema
    cols = _columns(parse_db_url(pg_url).sqlalchemy, schema)
    assert {"alert", "feed_state", "vuln_record", VERSION_TABLE} <= set(cols) and "retired_at" in cols["release"]


def test_server_and_audit_follow_the_same_convention() -> None:
    from medfw.audit.store import is_url
    from medfw.dburl import is_postgres
    from medfw.server.db import normalise_url

    assert normalise_url("fleet.sqlite") == "sqlite:///fleet.sqlite"  # a plain path is SQLite everywhere
    assert normalise_url("postgres://h/db?schema=fleet") == "postgresql+psycopg://h/db"
    for url in ("postgresql://h/db?schema=medfw_audit", "postgres://h/db", "audit.db"):
        assert is_url(url) == is_postgres(url)


def test_match_rows_are_built_for_records_stored_before_revision_0005(
    tmp_path: Path, full_index_path: Path, sbom_factory: object
) -> None:
    from alembic import command

    from medfw.vuln import scan

    db = tmp_path / "v.db"
    db.write_bytes(full_index_path.read_bytes())
    comps = [
        {
            "bom-ref": "o",
            "name": "openssl",
            "version": "1.0.1f",
            "cpe": "cpe:2.3:a:openssl:openssl:1.0.1f:*:*:*:*:*:*:*",
        },
        {"bom-ref": "c", "name": "curl", "version": "8.4.0", "cpe": "cpe:2.3:a:haxx:curl:8.4.0:*:*:*:*:*:*:*"},
    ]
    sbom = sbom_factory(comps)  # type: ignore[operator]
    index = open_index(str(db))
    before = [(f.vuln_id, f.component_ref, f.why) for f in scan(index, sbom).findings]
    with index.engine.begin() as conn:  # back to 0004: vuln_key as it was, no vuln_match
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    index.close()
    assert "vuln_match" not in _columns(f"sqlite:///{db}")
    index = open_index(str(db))  # 0005 rebuilds the rows from the stored records
    assert [(f.vuln_id, f.component_ref, f.why) for f in scan(index, sbom).findings] == before
    assert before
    index.close()
    assert "vuln_key" not in _columns(f"sqlite:///{db}")
