"""Secrets never travel in argv: the database password comes from a 0600 file or libpq's ``PGPASSFILE``, against the
real PostgreSQL server. Its trust authentication accepts any password, so the tests look at the password libpq
actually sent (``connection.info.password``) and at every process's command line and output."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from medfw.cli import main
from medfw.cli._ota_client import db_url as url_with_password
from medfw.server.db import make_engine

pytestmark = pytest.mark.postgres


def _private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _sent_password(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            return raw.info.password
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    assert ":" not in db_url.split("//", 1)[1].split("@", 1)[0]  # the URL holds no password
    return db_url


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_password_from_a_file_or_pgpassfile_reaches_the_server(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(_private(tmp_path / "pgpass", "*:*:*:*:from-pgpassfile\n")))
    assert _sent_password(pg_url) == "from-pgpassfile"  # libpq found it; medfw never saw it
    secret = _private(tmp_path / "db.pass", "from-password-file\n")
    with_password = url_with_password(argparse.Namespace(db_password_file=str(secret)), pg_url)
    assert _sent_password(with_password) == "from-password-file"
    secret.chmod(0o644)
    with pytest.raises(Exception, match="readable by other users"):
        url_with_password(argparse.Namespace(db_password_file=str(secret)), pg_url)
    secret.chmod(0o600)
    argv = ["ota", "token", "create", "--db", pg_url, "--db-password-file", str(secret), "--name", "ops"]
    assert main([*argv, "--role", "admin", "--json"]) == 0
    out = capsys.readouterr()
    assert "from-password-file" not in out.out + out.err


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out = [pid]
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for c in child.read_text().split():
            out += _tree(int(c))
    return out


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_serve_keeps_the_password_out_of_argv_and_logs(pg_url: str, tmp_path: Path) -> None:
    secret = _private(tmp_path / "db.pass", "pw-only-in-a-file\n")
    port = _port()
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    argv = ["ota", "serve", "--db", pg_url, "--db-password-file", str(secret), "--port", str(port), "--workers", "2"]
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from medfw.cli import run; run()", *argv], stdout=o, stderr=e, env=env
        )
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert proc.poll() is None, err.read_text()
                time.sleep(0.05)
        else:
            raise AssertionError("server did not become ready")
        pids = _tree(proc.pid)
        assert len(pids) >= 3  # the supervisor and its two workers
        for pid in pids:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert b"pw-only-in-a-file" not in cmdline, pid
        # the workers got it through their environment, which only the owner can read
        assert b"pw-only-in-a-file" in Path(f"/proc/{pids[-1]}/environ").read_bytes()
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/devices", timeout=5).status_code == 401  # answers
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    logs = out.read_text() + err.read_text()
    assert "pw-only-in-a-file" not in logs and "***" in out.read_text()  # the start-up line masks it
