"""Evidence: the audit trails of a release's canary units, as collected by the fleet server.

``release.yml`` names a directory of exported trails (``medfw ota device trails --rollout ID --out DIR``: one
``<device>.json`` per canary unit) and, optionally, the device CA certificate. Each trail is copied into the bundle
(``device-trails/``) and re-checked with public material only (:func:`medfw.identity.trail.check_exported_trail`):
canonical records, one unbroken hash chain, the unit's signature over its last entry, its certificate issued by the
device CA. The HMAC seals were verified by the fleet server at every upload.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medfw.errors import EvidenceError
from medfw.evidence.collect import BundleWriter
from medfw.evidence.report import CheckLine
from medfw.evidence.spec import ReleaseSpec

__all__ = ["collect_device_trails"]

_MAX_FILE = 64 * 1024 * 1024


def collect_device_trails(w: BundleWriter, spec: ReleaseSpec) -> CheckLine | None:
    """Copy and re-check the canary units' trails (``None`` when the release names none)."""
    if spec.device_trails is None:
        return None
    from medfw.identity.ca import load_certificate  # noqa: PLC0415
    from medfw.identity.trail import check_exported_trail  # noqa: PLC0415

    ca = None
    if spec.device_ca is not None:
        ca = load_certificate(w.read(spec.device_ca, "device CA certificate"), path=str(spec.device_ca))
    files = sorted(Path(spec.device_trails).glob("*.json"))
    if not files:
        raise EvidenceError("no exported unit trails (*.json) in the directory", path=str(spec.device_trails))
    results: list[dict[str, Any]] = []
    for f in files:
        raw = w.read(f, "unit audit trail")
        if len(raw) > _MAX_FILE:
            raise EvidenceError("unit trail export is too large", path=str(f))
        try:
            doc = json.loads(raw)
        except ValueError:
            raise EvidenceError("unit trail export is not JSON", path=str(f)) from None
        result = check_exported_trail(doc, device_ca=ca)
        results.append({**result, "file": f"device-trails/{f.name}"})
        w.put(f"device-trails/{f.name}", raw)
    w.json("results/device_trails.json", {"device_ca": ca is not None, "units": results})
    bad = [r for r in results if not r["ok"]]
    detail = (
        f"{len(results)} canary unit trail(s), {sum(r['entries'] for r in results)} entries: chain and unit "
        "signatures verify" + (" (certificates of the device CA)" if ca is not None else "")
        if not bad
        else "; ".join(f"{r['device']}: {r['reason']}" for r in bad)
    )
    return CheckLine("device_trails", not bad, detail, "results/device_trails.json")
