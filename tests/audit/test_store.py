"""Where a log lives: medfw's one database-URL convention (plain path, ``sqlite:///PATH``, ``postgresql://``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medfw.audit import AuditEvent, init_log, open_log, verify_log
from medfw.audit.log import append_session
from medfw.audit.store import is_url, locate, open_store, sibling
from medfw.audit.store_sqlite import SqliteStore
from medfw.errors import AuditError


def test_sqlite_url_and_plain_path_are_the_same_log(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    url = f"sqlite:///{path}"
    res = init_log(url)
    assert Path(str(path) + ".ckey").is_file()  # key files next to the file, not under a "sqlite:" directory
    append_session(url, [AuditEvent(type="boot.verify", outcome="success")])
    with open_log(path) as log:
        log.append(AuditEvent(type="boot.verify", outcome="success"))
    assert verify_log(url, res.verification_key).ok
    assert verify_log(path, res.verification_key).entries == 3
    store = open_store(url)
    try:
        assert isinstance(store, SqliteStore)
        assert store.label == str(path)
    finally:
        store.close()


def test_locations(tmp_path: Path) -> None:
    assert sibling(tmp_path / "x.db", ".vkey") == tmp_path / "x.db.vkey"
    assert sibling(f"sqlite:///{tmp_path}/x.db", ".ckey") == tmp_path / "x.db.ckey"
    assert sibling("postgresql://u@h/db?schema=s", ".vkey") is None
    for url in ("postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"):
        assert is_url(url)
        loc = locate(url + "?schema=audit_a&sslmode=disable")
        assert loc.schema == "audit_a"
        assert loc.libpq == "postgresql://u@h/db?sslmode=disable"
    assert locate("postgresql://u:secret@h/db").display == "postgresql://u:***@h/db"


def test_bad_locations(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="database URL") as e:
        open_log("http://example.org/log")
    assert e.value.field == "log"
    with pytest.raises(AuditError, match="schema") as e:
        locate("postgresql://u:secret@h/db?schema=Bad-Name")
    assert e.value.field == "schema"
    assert "secret" not in str(e.value.path)
    with pytest.raises(AuditError, match="not found"):
        open_log(f"sqlite:///{tmp_path}/missing.db")


@pytest.mark.postgres
def test_postgres_psycopg_scheme(tmp_path: Path) -> None:
    import uuid

    import psycopg

    base = os.environ.get("MEDFW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"h17_audit_{uuid.uuid4().hex[:10]}"
    url = base.replace("postgresql://", "postgresql+psycopg://", 1) + f"?schema={schema}"
    try:
        res = init_log(url, checkpoint_key_out=tmp_path / "pg.ckey")
        append_session(url, [AuditEvent(type="boot.verify", outcome="success")])
        report = verify_log(url, res.verification_key)
        assert report.ok and report.entries == 2, report
    finally:
        with psycopg.connect(base, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_an_appending_process_loads_no_signature_or_console_code(tmp_path: Path) -> None:
    """``medfw audit append`` (a session that signs nothing) imports neither pyca/cryptography nor rich."""
    import subprocess
    import sys

    log = tmp_path / "a.db"
    init_log(log)
    code = (
        "import sys; from medfw.cli import main; "
        "rc = main(['audit', 'append', sys.argv[1], '--type', 'release.sign', '--outcome', 'success']); "
        "print(rc, sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'rich'}))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(log)], check=True, capture_output=True, text=True).stdout
    assert out.splitlines()[-1] == "0 []", out
    assert "appended seq 1" in out
