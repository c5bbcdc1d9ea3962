"""The end of the loop: release 1.1.0 (the fix), the audit log and the evidence bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from medfw.demo.firmware import CHIP, MODEL, build_release, source_tree
from medfw.demo.runner import Demo
from medfw.demo.story import decide_all, publish

__all__ = ["attach_documents", "evidence_bundle", "release_110"]


def release_110(demo: Demo) -> None:
    """The fix: Mbed TLS 3.6.4, gated, signed, SBOM bound, every finding decided, registered, published."""
    demo.stage("8. Release 1.1.0 (Mbed TLS 3.6.4): gated, signed, SBOM bound, decided, published")
    sbom = build_release(demo, "1.1.0")
    diff = demo.run_json(["sbom", "diff", str(demo.path("sbom-1.0.0.cdx.json")), str(sbom)])
    changed = [f"{c['name']} {c['old_version']} -> {c['new_version']}" for c in _changes(diff)]
    demo.say("component changes: " + (", ".join(changed) or "none"))
    counts = decide_all(demo, "1.1.0", fixed_in="1.2.0")
    demo.say("decisions for 1.1.0: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    demo.facts["decisions_1.1.0"] = counts
    demo.facts["sbom_changes"] = changed
    db = str(demo.path("vuln.db"))
    image = str(demo.path("build", "app-1.1.0.signed.bin"))
    demo.run(["vuln", "release", "add", str(sbom), "--db", db, "--image", image])
    for fmt, name in (("cyclonedx", "vex.cdx.json"), ("openvex", "vex.openvex.json")):
        demo.run(["vuln", "vex", "export", str(sbom), "--db", db, "--format", fmt, "--out", str(demo.path(name))])
    demo.run(["vuln", "scan", str(sbom), "--db", db, "--format", "html", "--out", str(demo.path("vulns.html"))])
    publish(demo, "1.1.0")


def _changes(diff: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"name": str(ch.get("name")), "old_version": str(ch.get("old_version")), "new_version": str(ch.get("version"))}
        for ch in diff.get("changed", [])
        if ch.get("old_version") != ch.get("version")
    ]


def evidence_bundle(demo: Demo) -> Path:
    """Audit verify, then the evidence bundle of 1.1.0 built and verified against the pinned keys."""
    demo.stage("12. Audit log and the evidence bundle of 1.1.0")
    audit = str(demo.path("audit.db"))
    demo.run(["audit", "checkpoint", audit])
    demo.run(["audit", "verify", audit, "--key", str(demo.path("keys", "audit.vkey"))], label="audit log intact")
    rel = demo.path("release")
    (rel / "images").mkdir(parents=True, exist_ok=True)
    (rel / "keys").mkdir(parents=True, exist_ok=True)
    for name in ("app-1.1.0.signed.bin", "app-1.0.0.signed.bin", "bootloader.signed.bin"):
        shutil.copyfile(demo.path("build", name), rel / "images" / name)
    keys = demo.path("keys")
    pub = str(rel / "keys" / "secure-boot.pub.pem")
    demo.run(["keys", "export-public", str(keys / "secure-boot.pem"), "--out", pub])
    demo.run(["keys", "export-public", str(keys / "evidence.pem"), "--out", str(keys / "evidence.pub.pem")])
    shutil.copyfile(demo.path("sbom-1.1.0.cdx.json"), rel / "sbom.cdx.json")
    shutil.copyfile(demo.path("device-efuse.json"), rel / "efuse-summary.json")
    shutil.copyfile(source_tree(demo, "1.1.0") / "sdkconfig", rel / "sdkconfig")
    spec = {
        "name": "infusion-pump-fw", "version": "1.1.0", "model": MODEL, "chip": CHIP,
        "images": [
            {"path": "images/app-1.1.0.signed.bin", "role": "app", "format": "sbv2"},
            {"path": "images/bootloader.signed.bin", "role": "bootloader", "format": "sbv2"},
        ],
        "previous_image": "images/app-1.0.0.signed.bin", "trusted_keys": ["keys/secure-boot.pub.pem"],
        "efuse_summary": "efuse-summary.json", "build_config": "sdkconfig", "sbom": "sbom.cdx.json",
        "vuln_db": str(demo.path("vuln.db")), "audit_log": audit, "evidence_key": str(keys / "evidence.pem"),
    }  # fmt: skip
    (rel / "release.yml").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    bundle = demo.path("evidence-bundle")
    demo.run(["evidence", "build", "--release", str(rel), "--out", str(bundle), "--force", "--audit-log", audit])
    verify = ["evidence", "verify", str(bundle), "--key", str(keys / "evidence.pub.pem")]
    demo.run([*verify, "--audit-key", str(keys / "audit.vkey")], label="bundle verified: hashes, signatures, proofs")
    return bundle


def attach_documents(demo: Demo, bundle: Path) -> dict[str, Any]:
    """The signed CSAF advisory of 1.1.0, then the bundle, its VEX and the advisory attached to the release on the
    fleet server (where the console's release page links them)."""
    demo.stage("13. Release documents on the fleet server: evidence bundle, VEX and the signed CSAF advisory")
    keys = demo.path("keys")
    advisory = demo.path("advisory-1.1.0.csaf.json")
    demo.run(
        [
            "vuln", "advisory", "export", str(demo.path("sbom-1.1.0.cdx.json")), "--db", str(demo.path("vuln.db")),
            "--out", str(advisory), "--key", str(keys / "evidence.pem"), "--publisher", "Example Medical",
            "--namespace", "https://example-medical.invalid", "--model", MODEL,
        ],
        label="CSAF 2.0 advisory of 1.1.0, signed",
    )  # fmt: skip
    releases = demo.run_json(["ota", "release", "list"], quiet=True)
    release_id = next(int(r["id"]) for r in releases if r["version"] == "1.1.0")
    attached = demo.run_json(
        [
            "ota", "release", "attach", str(release_id), "--evidence", str(bundle),
            "--evidence-key", str(keys / "evidence.pub.pem"), "--vex", str(bundle / "vuln" / "vex.cdx.json"),
            "--vex", str(bundle / "vuln" / "vex.openvex.json"), "--csaf", str(advisory),
        ]
    )  # fmt: skip
    listed = demo.run_json(["ota", "release", "documents", str(release_id)])
    demo.say("attached to release 1.1.0: " + ", ".join(f"{d['kind']} ({d['size']} bytes)" for d in listed))
    return {"release": release_id, "attached": [d["kind"] for d in attached["attached"]], "listed": listed}
