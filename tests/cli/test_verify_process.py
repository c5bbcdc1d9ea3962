"""``medfw audit verify`` as a process of its own ends without the interpreter's teardown: its output is complete
and its exit codes are those of ``main`` (0 intact, 1 tampered, 2 bad input), also when it forked a worker; anything
that still needs the teardown (an exit handler, a live thread, a failed flush) gets the normal exit."""

from __future__ import annotations

import atexit
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from medfw.audit import AuditEvent, init_log, open_log
from medfw.cli import _common

#: the console script, run with a marker object whose finaliser writes ``<teardown>`` to stderr when the
#: interpreter is torn down; ``atexit`` as first argument registers an exit handler first, ``workers`` lets even a
#: small log be scanned by a forked worker
_SCRIPT = """
import os, sys
class Marker:
    def __del__(self, write=os.write):
        write(2, b"<teardown>")
marker = Marker()
mode = sys.argv.pop(1)
if mode == "atexit":
    import atexit
    atexit.register(print, "handler ran", file=sys.stderr)
if mode == "workers":
    import medfw.audit.verify
    medfw.audit.verify._PARALLEL_MIN = 0
sys.argv[0] = "medfw"
from medfw.cli import run
run()
"""

N = 3000


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("verify-process")
    path, key = d / "a.db", d / "a.vkey"
    init_log(path, key_out=key, epoch_length=100)
    with open_log(path) as w, w.batch():
        for i in range(N):
            w.append(AuditEvent(type="boot.verify", outcome="success", data={"i": i}))
    return path, key


def _env() -> dict[str, str]:
    """This environment without coverage measurement (it registers an exit handler) and with buffered stdout."""
    drop = ("COV_CORE_", "COVERAGE_", "PYTHONUNBUFFERED")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _verify(mode: str, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-c", _SCRIPT, mode, "audit", "verify", *map(str, argv)]
    return subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=120, check=False)


@pytest.mark.parametrize("mode", ["plain", "workers"])
def test_intact_log_exits_0_with_the_whole_envelope(log: tuple[Path, Path], mode: str) -> None:
    path, key = log
    r = _verify(mode, path, "--key", key, "--json", "--workers", "2")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True
    assert doc["exit_code"] == 0
    assert doc["result"]["verified"] == N + 1
    assert "<teardown>" not in r.stderr


def test_human_output_to_a_pipe_is_complete(log: tuple[Path, Path]) -> None:
    path, key = log
    r = _verify("workers", path, "--key", key)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"OK: {N + 1} entries intact (root ")
    assert r.stdout.endswith(")\n")
    assert "<teardown>" not in r.stderr


def test_tampered_log_exits_1(log: tuple[Path, Path], tmp_path: Path) -> None:
    path, key = log
    bad = tmp_path / "bad.db"
    bad.write_bytes(path.read_bytes())
    db = sqlite3.connect(bad, isolation_level=None)
    (rec,) = db.execute("SELECT record FROM entries WHERE pos = ?", (N // 2,)).fetchone()
    edited = bytes(rec).replace(b'"outcome":"success"', b'"outcome":"failure"')
    db.execute("UPDATE entries SET record = ? WHERE pos = ?", (edited, N // 2))
    db.close()
    for mode in ("plain", "workers"):
        r = _verify(mode, bad, "--key", key, "--json")
        assert r.returncode == 1, r.stderr
        doc = json.loads(r.stdout)
        assert doc["ok"] is False
        assert doc["exit_code"] == 1
        assert doc["result"]["first_bad_seq"] == N // 2
        assert doc["result"]["classification"] == "edited"
        assert "<teardown>" not in r.stderr


def test_bad_input_exits_2(log: tuple[Path, Path], tmp_path: Path) -> None:
    _, key = log
    r = _verify("plain", tmp_path / "missing.db", "--key", key, "--json")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    assert doc["exit_code"] == 2
    assert "not found" in doc["error"]["message"]
    assert "not found" in r.stderr
    assert "<teardown>" not in r.stderr


def test_an_exit_handler_gets_the_normal_exit(log: tuple[Path, Path]) -> None:
    path, key = log
    r = _verify("atexit", path, "--key", key, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] is True
    assert "handler ran" in r.stderr
    assert r.stderr.endswith("<teardown>")


def test_other_commands_keep_the_normal_exit(log: tuple[Path, Path]) -> None:
    path, _ = log
    args = [sys.executable, "-c", _SCRIPT, "plain", "audit", "show", str(path), "--type", "boot.verify", "--json"]
    r = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["result"]) == N
    assert r.stderr.endswith("<teardown>")


class _ExitError(Exception):
    pass


def _fake_exit(code: int) -> None:
    raise _ExitError(code)


@pytest.fixture
def no_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """No exit handler registered (coverage measurement registers one in this process) and ``os._exit`` caught."""
    monkeypatch.setattr(atexit, "_ncallbacks", lambda: 0)
    monkeypatch.setattr(os, "_exit", _fake_exit)


@pytest.mark.usefixtures("no_handlers")
def test_exit_without_teardown_flushes_then_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    flushed = []
    monkeypatch.setattr(out, "flush", lambda: flushed.append("out"))
    monkeypatch.setattr(sys, "stdout", out)
    with pytest.raises(_ExitError) as e:
        _common.exit_without_teardown(1)
    assert e.value.args == (1,)
    assert flushed == ["out"]


@pytest.mark.usefixtures("no_handlers")
def test_exit_without_teardown_returns_when_a_flush_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise BrokenPipeError

    out = io.StringIO()
    monkeypatch.setattr(out, "flush", broken)
    monkeypatch.setattr(sys, "stdout", out)
    _common.exit_without_teardown(0)  # returns: the normal exit reports the closed pipe


@pytest.mark.usefixtures("no_handlers")
def test_exit_without_teardown_returns_while_a_thread_runs() -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        _common.exit_without_teardown(0)  # returns: the normal exit joins the thread
    finally:
        stop.set()
        t.join()


def test_exit_without_teardown_returns_when_an_exit_handler_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atexit, "_ncallbacks", lambda: 1)
    monkeypatch.setattr(os, "_exit", _fake_exit)
    _common.exit_without_teardown(0)


def test_verify_loads_only_what_it_needs(log: tuple[Path, Path]) -> None:
    """Running ``audit verify`` builds only that command's parser and loads neither the other audit commands, nor the
    sink, the failure classification, the console library or argparse's shutil."""
    path, key = log
    code = (
        "import sys; from medfw.cli import main; rc = main(sys.argv[1:]); "
        "names = ('medfw.cli._audit_records', 'medfw.audit.sink', 'medfw.audit.classify', 'rich', 'shutil'); "
        "print(rc, [n for n in names if n in sys.modules])"
    )
    argv = [sys.executable, "-c", code, "audit", "verify", str(path), "--key", str(key), "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=120, check=True).stdout
    assert out.splitlines()[-1] == "0 []", out


def test_verify_forks_before_loading_dataclasses_the_report_or_signature_code(log: tuple[Path, Path]) -> None:
    """What runs before the fork is serial: it must not load :mod:`dataclasses` (and with it :mod:`inspect`, about
    10 ms), the report module or pyca/cryptography; the workers start first."""
    path, key = log
    code = (
        "import sys; import medfw.audit.verify as V; import medfw.audit.parallel as P; "
        "real = P.ParallelScan.start.__func__; V._PARALLEL_MIN = 0; seen = []\n"
        "def start(cls, *a, **k):\n"
        "    seen.extend(n for n in ('dataclasses', 'inspect', 'medfw.audit.report', 'cryptography') "
        "if n in sys.modules)\n"
        "    seen.append('forked')\n"
        "    return real(cls, *a, **k)\n"
        "P.ParallelScan.start = classmethod(start)\n"
        "from medfw.cli import main; rc = main(sys.argv[1:]); print(rc, seen)"
    )
    argv = [sys.executable, "-c", code, "audit", "verify", str(path), "--key", str(key), "--json", "--workers", "2"]
    out = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=120, check=True).stdout
    assert out.splitlines()[-1] == "0 ['forked']", out
