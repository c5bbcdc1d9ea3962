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
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from medfw._io import atomic_write_text
from medfw.cli import main as medfw_main
from medfw.errors import MedfwError
from medfw.image.esp import build_app_image

__all__ = ["DemoError", "main", "run_demo"]

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "device"
FEEDS = REPO_ROOT / "tests" / "vectors" / "vuln"
MODEL = "infusion-pump"
CHIP = "esp32c3"

#: The two releases: secure_version and the Mbed TLS version each links. 1.0.0 is the example device as
#: checked in (ESP-IDF v5.4 with its Mbed TLS 3.6.2); 1.1.0 is that tree with the mbedtls submodule moved to
#: v3.6.4 and the project version bumped (see :func:`_source_tree`).
RELEASES: dict[str, tuple[int, str]] = {"1.0.0": (1, "3.6.2"), "1.1.0": (2, "3.6.4")}


def _embedded(mbedtls: str) -> bytes:
    """Version strings the example firmware really embeds, so binary scanning has evidence to find."""
    return (
        f"\x00mbed TLS {mbedtls}\x00Mbed TLS {mbedtls}\x00".encode()
        + b"\x00FreeRTOS Kernel V10.5.1\x00"
        + b"\x00lwIP/2.2.0\x00"
        + b"\x00deflate 1.3.1 Copyright 1995-2024 Jean-loup Gailly and Mark Adler\x00"
        + b"\x00cJSON 1.7.18\x00"
    )


def _replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise DemoError(f"expected {old!r} in the example device", path=str(path))
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _source_tree(demo: Demo, version: str) -> Path:
    """The example device's source tree at ``version`` (its build directory is what SBOM generation reads).

    1.0.0 is ``examples/device`` itself; a later release is a copy with the project version and the Mbed TLS
    version of :data:`RELEASES` applied, as the team's commit would change them.
    """
    base_version, base_mbedtls = "1.0.0", RELEASES["1.0.0"][1]
    if version == base_version:
        return EXAMPLE
    tree = demo.path("src", f"device-{version}")
    if tree.is_dir():
        return tree
    shutil.copytree(EXAMPLE, tree)
    mbedtls = RELEASES[version][1]
    _replace_in(
        tree / "build" / "project_description.json",
        f'"project_version": "{base_version}"',
        f'"project_version": "{version}"',
    )
    _replace_in(tree / "sdkconfig", f'CONFIG_APP_PROJECT_VER="{base_version}"', f'CONFIG_APP_PROJECT_VER="{version}"')
    _replace_in(tree / "sbom.yml", f"version: '{base_version}'", f"version: '{version}'")
    svn = RELEASES[version][0]
    for symbol in ("CONFIG_BOOTLOADER_APP_SECURE_VERSION", "CONFIG_APP_SECURE_VERSION"):
        _replace_in(tree / "sdkconfig", f"{symbol}={RELEASES[base_version][0]}\n", f"{symbol}={svn}\n")
    _replace_in(tree / "esp-idf/components/mbedtls/mbedtls/sbom.yml", f"version: {base_mbedtls}", f"version: {mbedtls}")
    return tree


class DemoError(MedfwError):
    """A demo step did not give the expected result."""

    exit_code = 1


@dataclass
class Demo:
    """State of one demo run."""

    out: Path
    console: Console
    step_no: int = 0
    last_output: str = ""  #: stdout and stderr of the last command
    facts: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def run(self, argv: Sequence[str], *, expect: int = 0, label: str | None = None, quiet: bool = False) -> str:
        """Run one ``medfw`` command in-process; return its stdout; fail if the exit code is not ``expect``."""
        self.step_no += 1
        shown = " ".join(shlex.quote(a) for a in ("medfw", *argv))
        shown = shown.replace(str(self.out) + "/", "").replace(str(REPO_ROOT) + "/", "")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = medfw_main(list(argv))
        self.last_output = out.getvalue() + err.getvalue()
        log = self.path("logs", f"{self.step_no:02d}-{argv[0]}-{argv[1] if len(argv) > 1 else ''}.txt")
        log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # 0600: command output can hold secrets (the bootstrap admin token, device credentials)
        atomic_write_text(log, f"$ {shown}\n(exit {code})\n{out.getvalue()}{err.getvalue()}", mode=0o600)
        mark = "[green]✓[/]" if code == expect else "[red]✗[/]"
        note = f" [dim](exit {code}, expected)[/]" if expect != 0 and code == expect else ""
        if not quiet or code != expect:
            self.console.print(f"  {mark} [bold]$[/] {escape(shown)}{note}", highlight=False)
        if label:
            self.console.print(f"      {label}", highlight=False, markup=False)
        if code != expect:
            tail = (err.getvalue() or out.getvalue()).strip().splitlines()[-5:]
            raise DemoError(f"`{shown}` exited {code}, expected {expect}: {' | '.join(tail)}", path=str(log))
        return out.getvalue()

    def run_json(self, argv: Sequence[str], *, expect: int = 0) -> Any:
        """Run a command with ``--json`` and return the ``result`` (or ``error``) of its JSON envelope."""
        doc = json.loads(self.run([*argv, "--json"], expect=expect))
        return doc["result"] if "result" in doc else doc["error"]


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
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


@contextlib.contextmanager
def _server(demo: Demo, repo: Path, db: str, audit_log: Path) -> Iterator[str]:
    """Run ``medfw ota serve`` as a child process on a free loopback port; always stop it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
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
        "--allow-shared-secret-devices",  # the demo's units are simulators without device certificates
    ]
    log = demo.path("logs", "ota-server.txt")
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
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
    for role in ("tuf-root", "tuf-targets", "evidence"):
        demo.run(["keys", "generate", "--type", "ed25519", "--out", str(keys / f"{role}.pem")])
    demo.run(["audit", "init", str(demo.path("audit.db")), "--key-out", str(keys / "audit.vkey")])

    build = demo.path("build")
    build.mkdir(parents=True, exist_ok=True)
    for version, (svn, mbedtls) in RELEASES.items():
        payload = _embedded(mbedtls) + f"infusion-pump-fw {version}".encode() + bytes(range(256)) * 64
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
    demo.run(
        [
            "device",
            "init",
            dev,
            "--key-digest",
            demo.facts["key_digest"],
            "--chip",
            CHIP,
            "--flash-encryption",
            "--audit-log",
            audit,
        ]
    )
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


def _demo_decision(finding: dict[str, Any]) -> tuple[str, list[str], str]:
    """The example team's decision for a finding: patch what is known-exploited or critical, triage the rest.

    A real team decides each finding by analysis; the demo applies one documented rule so the decision
    record, VEX export and evidence bundle have realistic content.
    """
    if finding.get("kev") or finding.get("severity") == "critical":
        return (
            "exploitable",
            ["--response", "update"],
            "Fixed by upgrading the component in the next release; rollout tracked by the fleet server.",
        )
    if finding.get("severity") in {"low", "none"}:
        return (
            "not_affected",
            ["--justification", "requires_configuration"],
            "The vulnerable feature is disabled in this product's sdkconfig.",
        )
    return "in_triage", [], "Assigned to the product security team for applicability analysis."


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
            str(_source_tree(demo, "1.1.0") / "build"),
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
    demo.run(
        ["build", "check", str(_source_tree(demo, "1.1.0") / "sdkconfig")],
        label="build configuration gate: Secure Boot v2, anti-rollback, flash encryption (release), JTAG, ...",
    )
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
        state, extra, detail = _demo_decision(f)
        demo.run(
            [
                "vuln",
                "decide",
                sbom,
                f["vuln_id"],
                "--component",
                f["component_ref"],
                "--state",
                state,
                *extra,
                "--detail",
                detail,
                "--author",
                "security-team@medfw.example",
                "--db",
                db,
                "--audit-log",
                audit,
            ],
            quiet=True,
        )
    demo.console.print(f"      recorded {len(findings)} patch-or-justify decisions (CycloneDX analysis states)")
    demo.run(
        ["vuln", "vex", "export", sbom, "--db", db, "--format", "cyclonedx", "--out", str(demo.path("vex.cdx.json"))]
    )
    demo.run(
        ["vuln", "vex", "export", sbom, "--db", db, "--format", "openvex", "--out", str(demo.path("vex.openvex.json"))]
    )
    demo.run(["vuln", "release", "add", sbom, "--db", db])
    demo.run(["vuln", "scan", sbom, "--db", db, "--format", "html", "--out", str(demo.path("vulnerabilities.html"))])


def _ota(demo: Demo) -> None:
    demo.console.rule("[bold]4. Signed release over the air: TUF repository, fleet server, device agent")
    keys = demo.path("keys")
    repo = str(demo.path("tuf-repo"))
    audit = str(demo.path("audit.db"))
    demo.run(
        [
            "ota",
            "repo",
            "init",
            "--repo",
            repo,
            "--root-key",
            str(keys / "tuf-root.pem"),
            "--targets-key",
            str(keys / "tuf-targets.pem"),
            "--audit-log",
            audit,
        ]
    )
    demo.run(
        [
            "ota",
            "release",
            "publish",
            "--repo",
            repo,
            "--image",
            str(demo.path("build", "app-1.1.0.signed.bin")),
            "--model",
            MODEL,
            "--chip",
            CHIP,
            "--targets-key",
            str(keys / "tuf-targets.pem"),
            "--sbom",
            str(demo.path("sbom.cdx.json")),
            "--audit-log",
            audit,
        ]
    )
    db = f"sqlite:///{demo.path('ota.db')}"
    token = demo.run_json(["ota", "token", "create", "--db", db, "--name", "demo-admin", "--role", "admin"])
    with (
        _server(demo, Path(repo), db, Path(audit)) as url,
        _environ(MEDFW_OTA_SERVER=url, MEDFW_OTA_TOKEN=token["token"]),
    ):
        dev = str(demo.path("device"))
        demo.run(
            [
                "ota",
                "device",
                "add",
                "--id",
                "unit-0001",
                "--model",
                MODEL,
                "--chip",
                CHIP,
                "--group",
                "field",
                "--provision",
                dev,
                "--repo",
                repo,
            ]
        )
        # the unit reports what it runs (1.0.0) on its first poll
        demo.run(["device", "agent", dev, "--once", "--audit-log", audit])
        releases = demo.run_json(["ota", "release", "list", "--sync"])
        release_id = _release_ref(releases, "1.1.0")
        demo.run(["ota", "rollout", "create", "--release", release_id, "--group", "field", "--phases", "100%"])
        result = demo.run_json(["device", "agent", dev, "--once", "--audit-log", audit])
        demo.facts["ota_update"] = result
        if result.get("version") != "1.1.0":
            raise DemoError(f"the device did not end on 1.1.0 after the update: {result}")
        demo.run(["ota", "fleet"], label="fleet view: unit-0001 runs 1.1.0")
        demo.facts["fleet"] = demo.run_json(["ota", "fleet"])


def _release_ref(releases: Any, version: str) -> str:
    """The id of the published release with ``version`` in ``medfw ota release list --json`` output."""
    items = releases if isinstance(releases, list) else releases.get("releases", [])
    for r in items:
        if str(r.get("version")) == version:
            return str(r.get("id") or r.get("target") or r.get("name"))
    raise DemoError(f"release {version} not found on the server: {releases}")


def _downgrade_and_audit(demo: Demo) -> None:
    demo.console.rule("[bold]5. Downgrade attempt and audit verification")
    dev = str(demo.path("device"))
    audit = str(demo.path("audit.db"))
    demo.run(
        ["device", "update", dev, str(demo.path("build", "app-1.0.0.signed.bin")), "--audit-log", audit],
        expect=1,
        label="refused: secure_version 1 is below the device's anti-rollback counter",
    )
    if "(reason rollback)" not in demo.last_output:
        raise DemoError(f"the downgrade was refused for another reason: {demo.last_output.strip()}")
    demo.facts["downgrade_refused"] = demo.last_output.strip()
    status = demo.run_json(["device", "status", dev])
    demo.facts["status"] = status
    demo.run(["audit", "checkpoint", audit])
    demo.run(["audit", "verify", audit, "--key", str(demo.path("keys", "audit.vkey"))], label="audit log intact")


def _evidence(demo: Demo) -> Path:
    demo.console.rule("[bold]6. Evidence bundle for the reviewer")
    rel = demo.path("release")
    (rel / "images").mkdir(parents=True, exist_ok=True)
    (rel / "keys").mkdir(parents=True, exist_ok=True)
    for name in ("app-1.1.0.signed.bin", "app-1.0.0.signed.bin", "bootloader.signed.bin"):
        shutil.copyfile(demo.path("build", name), rel / "images" / name)
    demo.run(
        [
            "keys",
            "export-public",
            str(demo.path("keys", "secure-boot.pem")),
            "--out",
            str(rel / "keys" / "secure-boot.pub.pem"),
        ]
    )
    demo.run(
        [
            "keys",
            "export-public",
            str(demo.path("keys", "evidence.pem")),
            "--out",
            str(demo.path("keys", "evidence.pub.pem")),
        ]
    )
    shutil.copyfile(demo.path("sbom.cdx.json"), rel / "sbom.cdx.json")
    shutil.copyfile(_source_tree(demo, "1.1.0") / "sdkconfig", rel / "sdkconfig")
    shutil.copyfile(demo.path("device-efuse.json"), rel / "efuse-summary.json")
    spec = {
        "name": "infusion-pump-fw",
        "version": "1.1.0",
        "model": MODEL,
        "chip": CHIP,
        "images": [
            {"path": "images/app-1.1.0.signed.bin", "role": "app", "format": "sbv2"},
            {"path": "images/bootloader.signed.bin", "role": "bootloader", "format": "sbv2"},
        ],
        "previous_image": "images/app-1.0.0.signed.bin",
        "trusted_keys": ["keys/secure-boot.pub.pem"],
        "efuse_summary": "efuse-summary.json",
        "sbom": "sbom.cdx.json",
        "build_config": "sdkconfig",
        "vuln_db": str(demo.path("vuln.db")),
        "audit_log": str(demo.path("audit.db")),
        "evidence_key": str(demo.path("keys", "evidence.pem")),
    }
    (rel / "release.yml").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    bundle = demo.path("evidence-bundle")
    audit = str(demo.path("audit.db"))
    demo.run(["evidence", "build", "--release", str(rel), "--out", str(bundle), "--force", "--audit-log", audit])
    demo.run(
        [
            "evidence",
            "verify",
            str(bundle),
            "--key",
            str(demo.path("keys", "evidence.pub.pem")),
            "--audit-key",
            str(demo.path("keys", "audit.vkey")),
        ],
        label="bundle verified: every hash, signature, proof and VEX binding",
    )
    return bundle / "report.html"


def run_demo(out: Path, *, console: Console | None = None) -> dict[str, Any]:
    """Run the whole pipeline into ``out`` (emptied first) and return the facts it established."""
    console = console or Console(stderr=True, highlight=False)
    if not (EXAMPLE / "build" / "project_description.json").is_file():
        raise DemoError("the demo runs from a source checkout (examples/device is missing)", path=str(EXAMPLE))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    demo = Demo(out=out.resolve(), console=console)
    stages = (_keys_and_firmware, _device, _sbom_and_vulns, _ota, _downgrade_and_audit)
    started = time.monotonic()
    with Progress(
        TextColumn("[bold blue]demo"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} stages"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("demo", total=len(stages) + 1)
        for stage in stages:
            stage(demo)
            progress.advance(task)
        report = _evidence(demo)
        progress.advance(task)
    demo.facts["report"] = str(report)
    demo.facts["seconds"] = round(time.monotonic() - started, 1)
    (out / "demo-facts.json").write_text(json.dumps(demo.facts, indent=2, default=str), encoding="utf-8")
    console.rule("[bold green]Done")
    console.print(f"Finished in {demo.facts['seconds']} s. Reviewer report: {report}", highlight=False)
    console.print(f"Every command's output: {out / 'logs'}", highlight=False)
    return demo.facts


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m medfw.demo``."""
    parser = argparse.ArgumentParser(prog="python -m medfw.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/demo"), help="output directory (emptied first)")
    args = parser.parse_args(argv)
    try:
        run_demo(args.out)
    except MedfwError as e:
        Console(stderr=True).print(f"[red]demo failed:[/] {escape(e.diagnostics())}", highlight=False)
        return e.exit_code or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
