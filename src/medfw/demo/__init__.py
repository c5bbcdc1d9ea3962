"""``make demo``: the remediation loop on the bundled example device and a fleet of simulated units, from nothing.

Release 1.0.0 ships with Mbed TLS 3.6.1 → a feed update flags a critical finding in it (CVE-2024-49195, scored
by CISA-ADP) → the fleet's exposure → triage → release 1.1.0 with Mbed TLS 3.6.4, its build configuration
gated, signed, its SBOM bound to the image, published → a staged rollout (canary first) to six units, one of
which reverts → exposure 0 on the updated units → a downgrade refused → the evidence bundle of 1.1.0, with
the CVE shown as fixed by this release, verified.

Every step runs a real ``medfw`` command (printed as it runs, its full output kept under ``OUT/logs/``), so
the demo doubles as a worked example of the CLI. The fleet server runs as a child process on a free loopback
port and is always stopped. What each step established is written to ``OUT/demo-facts.json`` (checked by
``tests/test_demo.py``). Run with ``python -m medfw.demo [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from medfw.demo import evidence, fleet, story
from medfw.demo.firmware import RELEASES
from medfw.demo.runner import EXAMPLE, Demo, DemoError, environ, fleet_server
from medfw.errors import MedfwError

__all__ = ["RELEASES", "DemoError", "main", "run_demo"]


def _loop(demo: Demo) -> None:
    story.keys_and_log(demo)
    story.release_100(demo)
    story.surveillance_baseline(demo)
    db = f"sqlite:///{demo.path('ota.db')}"
    token = demo.run_json(["ota", "token", "create", "--db", db, "--name", "demo-admin", "--role", "admin"])
    with (
        fleet_server(demo, demo.path("tuf-repo"), db, demo.path("audit.db")) as url,
        environ(MEDFW_OTA_SERVER=url, MEDFW_OTA_TOKEN=token["token"], MEDFW_VULN_DB=str(demo.path("vuln.db"))),
    ):
        fleet.provision_fleet(demo)
        flagged = story.feed_update(demo)
        vuln_id = str(flagged["vuln_id"])
        demo.facts["exposure_before"] = fleet.exposure(demo, vuln_id, stage="7. Exposure: which units run it")
        story.triage(demo)
        evidence.release_110(demo)
        demo.facts["rollout"] = fleet.staged_rollout(demo)
        demo.facts["exposure_after"] = fleet.exposure(demo, vuln_id, stage="10. Exposure after the rollout")
        demo.run(
            [
                "vuln", "decide", str(demo.path("sbom-1.0.0.cdx.json")), vuln_id, "--component",
                str(flagged["component_ref"]), "--state", "resolved", "--fixed-in", "3.6.4", "--detail",
                "Fixed in release 1.1.0 (Mbed TLS 3.6.4), rolled out to the field group.",
                "--author", "psirt@example-medical.invalid", "--audit-log", str(demo.path("audit.db")),
            ],
            label=f"{vuln_id}: exploitable -> resolved (fixed in 1.1.0)",
        )  # fmt: skip
    demo.facts["downgrade_refused"] = fleet.downgrade_refused(demo)
    bundle = evidence.evidence_bundle(demo)
    demo.facts["evidence"] = _evidence_facts(bundle)
    with (
        fleet_server(demo, demo.path("tuf-repo"), db, demo.path("audit.db")) as url,
        environ(MEDFW_OTA_SERVER=url, MEDFW_OTA_TOKEN=token["token"]),
    ):
        demo.facts["documents"] = evidence.attach_documents(demo, bundle)


def _evidence_facts(bundle: Path) -> dict[str, Any]:
    summary = json.loads((bundle / "results" / "summary.json").read_text(encoding="utf-8"))
    fixed = json.loads((bundle / "vuln" / "fixed.json").read_text(encoding="utf-8"))
    return {
        "bundle": str(bundle),
        "report": str(bundle / "report.html"),
        "pdf": str(bundle / "report.pdf"),
        "ok": summary["ok"],
        "failed_checks": [c["name"] for c in summary["checks"] if not c["ok"]],
        "fixed": fixed,
    }


def run_demo(out: Path, *, console: Console | None = None) -> dict[str, Any]:
    """Run the whole loop into ``out`` (emptied first) and return the facts it established."""
    console = console or Console(stderr=True, highlight=False)
    if not (EXAMPLE / "build" / "project_description.json").is_file():
        raise DemoError("the demo runs from a source checkout (examples/device is missing)", path=str(EXAMPLE))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    demo = Demo(out=out.resolve(), console=console)
    demo.facts["fleet_size"] = len(story.FLEET)
    started = time.monotonic()
    _loop(demo)
    demo.facts["seconds"] = round(time.monotonic() - started, 1)
    (out / "demo-facts.json").write_text(json.dumps(demo.facts, indent=2, default=str), encoding="utf-8")
    console.rule("[bold green]Done")
    report = demo.facts["evidence"]["report"]
    console.print(f"Finished in {demo.facts['seconds']} s. Reviewer report: {report} (and report.pdf)", highlight=False)
    console.print(f"Every command's output: {out / 'logs'}; what each step established: {out / 'demo-facts.json'}")
    return demo.facts


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m medfw.demo``."""
    parser = argparse.ArgumentParser(prog="python -m medfw.demo", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/demo"), help="output directory (emptied first)")
    args = parser.parse_args(argv)
    try:
        run_demo(args.out)
    except MedfwError as e:
        Console(stderr=True).print(f"[red]demo failed:[/] {escape(e.diagnostics())}", highlight=False)
        return e.exit_code or 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
