"""The demo's machinery: run ``medfw`` commands in-process and log them, the fleet server as a child process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from medfw._io import atomic_write_text
from medfw.cli import main as medfw_main
from medfw.errors import MedfwError

__all__ = ["EXAMPLE", "FEEDS", "REPO_ROOT", "Demo", "DemoError", "environ", "fleet_server"]

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = REPO_ROOT / "examples" / "device"
FEEDS = REPO_ROOT / "tests" / "vectors" / "vuln"


class DemoError(MedfwError):
    """A demo step did not give the expected result."""

    exit_code = 1


@dataclass
class Demo:
    """State of one demo run: where it writes, what it printed, and the facts it established."""

    out: Path
    console: Console
    step_no: int = 0
    last_output: str = ""  #: stdout and stderr of the last command
    facts: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        """A path under the demo's output directory."""
        return self.out.joinpath(*parts)

    def stage(self, title: str) -> None:
        """Print a stage heading."""
        self.console.rule(f"[bold]{escape(title)}")

    def say(self, text: str) -> None:
        """Print one line of narration."""
        self.console.print(f"      {text}", highlight=False, markup=False)

    def run(self, argv: Sequence[str], *, expect: int = 0, label: str | None = None, quiet: bool = False) -> str:
        """Run one ``medfw`` command in-process; return its stdout; fail if the exit code is not ``expect``."""
        self.step_no += 1
        shown = " ".join(shlex.quote(a) for a in ("medfw", *argv))
        shown = shown.replace(str(self.out) + "/", "").replace(str(REPO_ROOT) + "/", "")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = medfw_main(list(argv))
        self.last_output = out.getvalue() + err.getvalue()
        log = self.path("logs", f"{self.step_no:03d}-{argv[0]}-{argv[1] if len(argv) > 1 else ''}.txt")
        log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # 0600: command output can hold secrets (the bootstrap admin token, device credentials)
        atomic_write_text(log, f"$ {shown}\n(exit {code})\n{out.getvalue()}{err.getvalue()}", mode=0o600)
        mark = "[green]✓[/]" if code == expect else "[red]✗[/]"
        note = f" [dim](exit {code}, expected)[/]" if expect != 0 and code == expect else ""
        if not quiet or code != expect:
            self.console.print(f"  {mark} [bold]$[/] {escape(shown)}{note}", highlight=False)
        if label:
            self.say(label)
        if code != expect:
            tail = (err.getvalue() or out.getvalue()).strip().splitlines()[-5:]
            raise DemoError(f"`{shown}` exited {code}, expected {expect}: {' | '.join(tail)}", path=str(log))
        return out.getvalue()

    def run_json(self, argv: Sequence[str], *, expect: int = 0, quiet: bool = False) -> Any:
        """Run a command with ``--json`` and return the ``result`` (or ``error``) of its JSON envelope."""
        doc = json.loads(self.run([*argv, "--json"], expect=expect, quiet=quiet))
        return doc["result"] if "result" in doc else doc["error"]


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set environment variables (what an operator would export) for the duration of a block."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise DemoError(f"OTA server exited with {proc.returncode}", path=str(log))
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise DemoError("OTA server did not start within 30 s", path=str(log))
        time.sleep(0.2)


@contextlib.contextmanager
def fleet_server(demo: Demo, repo: Path, db: str, audit_log: Path) -> Iterator[str]:
    """Run ``medfw ota serve`` as a child process on a free loopback port; always stop it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "medfw", "ota", "serve", "--db", db, "--repo", str(repo)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--audit-log", str(audit_log)]
    argv += ["--allow-shared-secret-devices"]  # the demo's units are simulators without device certificates
    log = demo.path("logs", "ota-server.txt")
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(proc, url, log)
            demo.console.print(f"  [green]✓[/] OTA server listening on {url} (pid {proc.pid})", highlight=False)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
