"""``make demo``: the whole medfw pipeline on the bundled example device, from nothing, in one run.

keys → signed firmware → SBOM → vulnerability scan and decisions → TUF release → OTA server → a simulated
device updates and confirms → a downgrade is refused → audit verify → evidence bundle build and verify.

Every step runs a real ``medfw`` command (printed as it runs, its full output kept under ``OUT/logs/``),
so the demo doubles as a worked example of the CLI. The OTA server runs as a child process on a free
loopback port and is always stopped at the end. Run with ``python -m medfw.demo [--out DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import shutil
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
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from medfw.cli import main as medfw_main
from medfw.errors import MedfwError
from medfw.image.esp import build_app_image

__all__ = ["DemoError", "main", "run_demo"]

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "device"
FEEDS = REPO_ROOT / "tests" / "vectors" / "vuln"
MODEL = "infusion-pump"
CHIP = "esp32c3"
ADMIN_TOKEN = "demo-admin-token-0123456789abcdef"  # noqa: S105 - a throwaway token for the local demo server

# Version strings the example firmware really embeds, so binary scanning has evidence to find.
_EMBEDDED = (
    b"\x00mbed TLS 3.6.2\x00Mbed TLS 3.6.2\x00"
    b"\x00FreeRTOS Kernel V10.5.1\x00"
    b"\x00lwIP/2.2.0\x00"
    b"\x00deflate 1.3.1 Copyright 1995-2024 Jean-loup Gailly and Mark Adler\x00"
    b"\x00cJSON 1.7.18\x00"
)


class DemoError(MedfwError):
    """A demo step did not give the expected result."""

    exit_code = 1


@dataclass
class Demo:
    """State of one demo run."""

    out: Path
    console: Console
    progress: Progress | None = None
    step_no: int = 0
    facts: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def run(self, argv: Sequence[str], *, expect: int = 0, label: str | None = None) -> str:
        """Run one ``medfw`` command in-process; return its stdout; fail if the exit code is not ``expect``."""
        self.step_no += 1
        shown = " ".join(shlex.quote(a) for a in ("medfw", *argv))
        shown = shown.replace(str(self.out) + "/", "").replace(str(REPO_ROOT) + "/", "")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = medfw_main(list(argv))
        log = self.path("logs", f"{self.step_no:02d}-{argv[0]}-{argv[1] if len(argv) > 1 else ''}.txt")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {shown}\n(exit {code})\n{out.getvalue()}{err.getvalue()}", encoding="utf-8")
        mark = "[green]✓[/]" if code == expect else "[red]✗[/]"
        note = f" [dim](exit {code}, expected)[/]" if expect != 0 and code == expect else ""
        self.console.print(f"  {mark} [bold]$[/] {shown}{note}", highlight=False)
        if label:
            self.console.print(f"      {label}", highlight=False, markup=False)
        if code != expect:
            tail = (err.getvalue() or out.getvalue()).strip().splitlines()[-5:]
            raise DemoError(f"`{shown}` exited {code}, expected {expect}: {' | '.join(tail)}", path=str(log))
        return out.getvalue()

    def run_json(self, argv: Sequence[str], *, expect: int = 0) -> Any:
        """Run a command with ``--json`` and parse its output."""
        return json.loads(self.run([*argv, "--json"], expect=expect))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(demo: Demo, repo: Path, db: Path, audit_log: Path) -> Iterator[str]:
    """Run ``medfw ota serve`` as a child process on a free loopback port; always stop it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, MEDFW_OTA_ADMIN_TOKEN=ADMIN_TOKEN)
    argv = [
        sys.executable,
        "-m",
        "medfw",
        "ota",
        "serve",
        "--db",
        str(db),
        "--repo",
        str(repo),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--audit-log",
        str(audit_log),
    ]
    log = demo.path("logs", "ota-server.txt")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise DemoError(f"OTA server exited with {proc.returncode}", path=str(log))
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise DemoError("OTA server did not start within 30 s", path=str(log))
                time.sleep(0.2)
            demo.console.print(f"  [green]✓[/] OTA server listening on {url} (pid {proc.pid})", highlight=False)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _keys_and_firmware(demo: Demo) -> None:
    demo.console.rule("[bold]1. Keys and signed firmware")
    keys = demo.path("keys")
    demo.run(["keys", "generate", "--type", "rsa3072", "--out", str(keys / "secure-boot.pem")])
    digest = demo.run_json(["keys", "digest", str(keys / "secure-boot.pem"), "--format", "sbv2"])
    demo.facts["key_digest"] = digest["digest"]
    for role in ("tuf-root", "tuf-targets", "tuf-snapshot", "tuf-timestamp", "evidence"):
        demo.run(["keys", "generate", "--type", "ed25519", "--out", str(keys / f"{role}.pem")])
    demo.run(["audit", "init", str(demo.path("audit.db")), "--key-out", str(keys / "audit.vkey")])

    build = demo.path("build")
    build.mkdir(parents=True, exist_ok=True)
    releases = {"1.0.0": 1, "1.1.0": 2}
    for version, svn in releases.items():
        payload = _EMBEDDED + f"infusion-pump-fw {version}".encode() + bytes(range(256)) * 64
        image = build_app_image(
            chip=CHIP, version=version, secure_version=svn, project_name="infusion-pump-fw", payload=payload
        )
        (build / f"app-{version}.bin").write_bytes(image)
        demo.run(
            [
                "sign",
                "sbv2",
                "--key",
                str(keys / "secure-boot.pem"),
                str(build / f"app-{version}.bin"),
                "--out",
                str(build / f"app-{version}.signed.bin"),
                "--audit-log",
                str(demo.path("audit.db")),
            ]
        )
    bootloader = build_app_image(chip=CHIP, version="bootloader", secure_version=0, project_name="bootloader")
    (build / "bootloader.bin").write_bytes(bootloader)
    demo.run(
        [
            "sign",
            "sbv2",
            "--key",
            str(keys / "secure-boot.pem"),
            str(build / "bootloader.bin"),
            "--out",
            str(build / "bootloader.signed.bin"),
        ]
    )
    info = demo.run_json(["image", "info", str(build / "app-1.1.0.signed.bin")])
    demo.facts["image_info"] = info
    demo.run(["verify", "sbv2", "--key-digest", demo.facts["key_digest"], str(build / "app-1.1.0.signed.bin")])


def _device(demo: Demo) -> None:
    demo.console.rule("[bold]2. A provisioned unit in the field, running 1.0.0")
    dev = str(demo.path("device"))
    audit = str(demo.path("audit.db"))
    demo.run(["device", "init", dev, "--key-digest", demo.facts["key_digest"], "--chip", CHIP, "--audit-log", audit])
    demo.run(
        [
            "device",
            "flash",
            dev,
            "--bootloader",
            str(demo.path("build", "bootloader.signed.bin")),
            "--app",
            str(demo.path("build", "app-1.0.0.signed.bin")),
            "--audit-log",
            audit,
        ]
    )
    boot = demo.run_json(["device", "boot", dev, "--audit-log", audit])
    demo.run(["device", "confirm", dev, "--audit-log", audit])
    demo.run(["device", "efuse-summary", dev, "--out", str(demo.path("device-efuse.json"))])
    demo.run(["efuse", "check", str(demo.path("device-efuse.json"))], label="eFuse lock-down policy: all rules pass")
    demo.facts["boot_1"] = boot


def _sbom_and_vulns(demo: Demo) -> None:
    demo.console.rule("[bold]3. SBOM, vulnerability scan and patch-or-justify decisions")
    sbom = str(demo.path("sbom.cdx.json"))
    db = str(demo.path("vuln.db"))
    audit = str(demo.path("audit.db"))
    demo.run(
        [
            "sbom",
            "generate",
            "--idf-build",
            str(EXAMPLE / "build"),
            "--binary",
            str(demo.path("build", "app-1.1.0.bin")),
            "--serial",
            "urn:uuid:6f0c7a52-1d1e-4a8e-9c1b-2f3e4d5c6b7a",
            "--out",
            sbom,
            "--audit-log",
            audit,
        ]
    )
    demo.run(["sbom", "check", sbom])
    feeds = FEEDS
    demo.run(
        [
            "vuln",
            "feed",
            "import",
            "--db",
            db,
            "--nvd",
            str(feeds / "nvd"),
            "--cve5",
            str(feeds / "cve5"),
            "--osv",
            str(feeds / "osv"),
            "--kev",
            str(feeds / "kev" / "known_exploited_vulnerabilities.json"),
            "--epss",
            str(feeds / "custom" / "epss_scores-2026-11-20.csv"),
        ]
    )
    scan = demo.run_json(["vuln", "scan", sbom, "--db", db, "--format", "json"])
    findings = scan.get("findings", [])
    demo.facts["findings"] = len(findings)
    for f in findings:
        if f.get("decision"):
            continue
        cve, ref = f["id"], f["component"]
        demo.run(
            [
                "vuln",
                "decide",
                sbom,
                cve,
                "--component",
                ref,
                "--state",
                "in_triage",
                "--detail",
                "Reviewed in the demo: scheduled for assessment by the product security team.",
                "--author",
                "demo@medfw.example",
                "--db",
                db,
                "--audit-log",
                audit,
            ]
        )
    demo.run(["vuln", "vex", "export", sbom, "--db", db, "--format", "cyclonedx", "--out", str(demo.path("vex.cdx.json"))])
    demo.run(["vuln", "vex", "export", sbom, "--db", db, "--format", "openvex", "--out", str(demo.path("vex.openvex.json"))])
    demo.run(["vuln", "release", "add", sbom, "--db", db])
    demo.run(["vuln", "scan", sbom, "--db", db, "--format", "html", "--out", str(demo.path("vulnerabilities.html"))])
