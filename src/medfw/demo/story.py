"""The stages of the demo: the remediation loop on the example device and a fleet of simulated units."""

from __future__ import annotations

from typing import Any

from medfw.demo.firmware import CHIP, MODEL, build_bootloader, build_release
from medfw.demo.runner import FEEDS, Demo, DemoError
from medfw.demo.triage import decision_for

__all__ = [
    "FLEET",
    "decide_all",
    "feed_update",
    "keys_and_log",
    "publish",
    "release_100",
    "scan_release",
    "surveillance_baseline",
    "triage",
]

#: The simulated fleet: six units in the field; the last one's new app will fail to confirm.
FLEET = tuple(f"unit-{i:04d}" for i in range(1, 7))


def keys_and_log(demo: Demo) -> None:
    """Release keys (secure boot, TUF root/targets, evidence) and the audit log every step appends to."""
    demo.stage("1. Keys and the audit log")
    keys = demo.path("keys")
    demo.run(["keys", "generate", "--type", "rsa3072", "--out", str(keys / "secure-boot.pem")])
    demo.facts["key_digest"] = demo.run_json(["keys", "digest", str(keys / "secure-boot.pem"), "--format", "sbv2"])[
        "digest"
    ]
    for role in ("tuf-root", "tuf-targets", "evidence"):
        demo.run(["keys", "generate", "--type", "ed25519", "--out", str(keys / f"{role}.pem")], quiet=True)
    demo.run(["audit", "init", str(demo.path("audit.db")), "--key-out", str(keys / "audit.vkey")])


def publish(demo: Demo, version: str) -> None:
    """Publish a signed release with its bound SBOM to the TUF repository (the offline targets key signs)."""
    demo.run(
        [
            "ota", "release", "publish", "--repo", str(demo.path("tuf-repo")),
            "--image", str(demo.path("build", f"app-{version}.signed.bin")), "--model", MODEL, "--chip", CHIP,
            "--targets-key", str(demo.path("keys", "tuf-targets.pem")),
            "--sbom", str(demo.path(f"sbom-{version}.cdx.json")), "--audit-log", str(demo.path("audit.db")),
        ],
        label=f"published {version}: the SBOM's image hash matches the signed image",
    )  # fmt: skip


def release_100(demo: Demo) -> None:
    """Release 1.0.0: gate, build, sign, SBOM bound to the image, published."""
    demo.stage("2. Release 1.0.0 (Mbed TLS 3.6.1): gated, signed, SBOM bound, published")
    build_bootloader(demo)
    build_release(demo, "1.0.0")
    demo.run(
        [
            "ota", "repo", "init", "--repo", str(demo.path("tuf-repo")),
            "--root-key", str(demo.path("keys", "tuf-root.pem")),
            "--targets-key", str(demo.path("keys", "tuf-targets.pem")), "--audit-log", str(demo.path("audit.db")),
        ]
    )  # fmt: skip
    publish(demo, "1.0.0")


def surveillance_baseline(demo: Demo) -> None:
    """The feeds as they were on release day (OSV and KEV), and 1.0.0 registered for postmarket rescans."""
    demo.stage("3. Postmarket surveillance: 1.0.0 registered against the feeds of its release day")
    db = str(demo.path("vuln.db"))
    kev = str(FEEDS / "kev" / "known_exploited_vulnerabilities.json")
    demo.run(["vuln", "feed", "import", "--db", db, "--osv", str(FEEDS / "osv"), "--kev", kev])
    added = demo.run_json(
        [
            "vuln", "release", "add", str(demo.path("sbom-1.0.0.cdx.json")), "--db", db,
            "--image", str(demo.path("build", "app-1.0.0.signed.bin")),
        ]
    )  # fmt: skip
    demo.say(f"baseline: {added['findings']} finding(s) for 1.0.0 with the release-day feeds")
    demo.facts["baseline_findings"] = added["findings"]


def scan_release(demo: Demo, version: str) -> list[dict[str, Any]]:
    doc = demo.run_json(
        ["vuln", "scan", str(demo.path(f"sbom-{version}.cdx.json")), "--db", str(demo.path("vuln.db"))], quiet=True
    )
    return list(doc.get("findings", []))


def feed_update(demo: Demo) -> dict[str, Any]:
    """A feed update (NVD-shaped records and CVE 5 with CISA-ADP scores) and the rescan that flags 1.0.0."""
    demo.stage("4. Feed update: the rescan flags a critical Mbed TLS finding in the shipped release")
    db = str(demo.path("vuln.db"))
    demo.run(["vuln", "feed", "import", "--db", db, "--nvd", str(FEEDS / "nvd"), "--cve5", str(FEEDS / "cve5")])
    rescan = demo.run(["vuln", "rescan", "--db", db], expect=1, label="rescan: exit 1, new unhandled critical finding")
    findings = scan_release(demo, "1.0.0")
    flagged = [f for f in findings if f.get("kev") or f.get("severity") == "critical"]
    if not flagged:
        raise DemoError("the feed update flagged no critical or known-exploited finding in 1.0.0")
    top = flagged[0]
    if top["vuln_id"] not in rescan:
        raise DemoError(f"the rescan did not name {top['vuln_id']}: {rescan.strip()}")
    demo.say(
        f"{top['vuln_id']} in {top['component']}: {top['severity']} {top.get('score')} "
        f"({top.get('severity_source')}){', known exploited' if top.get('kev') else ''}"
    )
    demo.facts["flagged"] = {
        "id": top["vuln_id"],
        "component": top["component"],
        "severity": top["severity"],
        "score": top.get("score"),
        "severity_source": top.get("severity_source"),
        "kev": bool(top.get("kev")),
        "rescan_exit": 1,
        "new_in_rescan": top["vuln_id"] in rescan,
    }
    demo.facts["findings_1.0.0"] = len(findings)
    return top


def decide_all(demo: Demo, version: str, *, fixed_in: str, quiet: bool = True) -> dict[str, int]:
    """Record the team's decision for every undecided finding of ``version``; return counts per state."""
    counts: dict[str, int] = {}
    for f in scan_release(demo, version):
        if f.get("decision"):
            state = str(f["decision"]["state"])
        else:
            state, extra, detail = decision_for(f, fixed_in=fixed_in)
            demo.run(
                [
                    "vuln", "decide", str(demo.path(f"sbom-{version}.cdx.json")), f["vuln_id"],
                    "--component", f["component_ref"], "--state", state, *extra, "--detail", detail,
                    "--author", "psirt@example-medical.invalid", "--db", str(demo.path("vuln.db")),
                    "--audit-log", str(demo.path("audit.db")),
                ],
                quiet=quiet,
            )  # fmt: skip
        counts[state] = counts.get(state, 0) + 1
    return counts


def triage(demo: Demo) -> None:
    """Patch-or-justify for every finding of 1.0.0; VEX out."""
    demo.stage("6. Triage: not_affected with a justification, or exploitable with a fix and a due date")
    counts = decide_all(demo, "1.0.0", fixed_in="1.1.0")
    demo.say("decisions for 1.0.0: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    demo.facts["decisions_1.0.0"] = counts
    sbom = str(demo.path("sbom-1.0.0.cdx.json"))
    out = str(demo.path("vex-1.0.0.openvex.json"))
    demo.run(["vuln", "vex", "export", sbom, "--db", str(demo.path("vuln.db")), "--format", "openvex", "--out", out])
