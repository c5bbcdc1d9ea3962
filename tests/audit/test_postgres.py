"""The same log on PostgreSQL (127.0.0.1:5432, database ``test``), one schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from medfw.audit import AuditEvent, export_bundle, init_log, open_log, verify_bundle, verify_log
from medfw.audit import report as V  # noqa: N812
from medfw.errors import AuditError

pytestmark = pytest.mark.postgres

BASE = os.environ.get("MEDFW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_log() -> Iterator[tuple[str, str]]:
    schema = f"medfw_audit_t_{uuid.uuid4().hex[:12]}"
    yield f"{BASE}?schema={schema}", schema
    with psycopg.connect(BASE, autocommit=True) as db:
        db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_postgres_roundtrip_and_tamper(pg_log: tuple[str, str], tmp_path: Path) -> None:
    url, schema = pg_log
    with pytest.raises(AuditError, match="checkpoint key"):
        init_log(url)  # the checkpoint key is never stored in the database: say where it goes
    res = init_log(url, epoch_length=5, checkpoint_interval=20, checkpoint_key_out=tmp_path / "pg.ckey")
    with pytest.raises(AuditError, match="already exists"):
        init_log(url)
    with open_log(url) as log:
        with log.batch():
            for i in range(40):
                log.append(AuditEvent(type="vuln.decision", outcome="info", data={"i": i}))
        cp = log.checkpoint("pre-update")
    report = verify_log(url, res.verification_key, checkpoint=cp)
    assert report.ok, report
    assert report.stored_checkpoints >= 3
    bundle = export_bundle(url, seqs=[0, 7, 20])
    assert verify_bundle(bundle, key=res.verification_key).ok

    with psycopg.connect(BASE, autocommit=True) as db:
        db.execute(f'SET search_path TO "{schema}"')
        rec = bytes(db.execute("SELECT record FROM entries WHERE pos = 10").fetchone()[0])
        db.execute("UPDATE entries SET record = %s WHERE pos = 10", (rec.replace(b'"i":9', b'"i":8'),))
    report = verify_log(url, res.verification_key)
    assert (report.ok, report.classification, report.first_bad_seq) == (False, V.EDITED, 10)

    with psycopg.connect(BASE, autocommit=True) as db:
        db.execute(f'SET search_path TO "{schema}"')
        db.execute("UPDATE entries SET record = %s WHERE pos = 10", (rec,))
        db.execute("DELETE FROM entries WHERE pos >= 30")
    report = verify_log(url, res.verification_key, checkpoint=cp)
    assert (report.classification, report.first_bad_seq) == (V.TRUNCATED, 30)


def test_postgres_missing_log_and_bad_schema(pg_log: tuple[str, str]) -> None:
    url, _ = pg_log
    with pytest.raises(AuditError, match="not found"):
        open_log(url)
    with pytest.raises(AuditError, match="schema"):
        open_log(f"{BASE}?schema=Bad-Name")
