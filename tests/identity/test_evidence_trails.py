"""Evidence bundles can include the canary units' trails: exported from the fleet server, re-checked offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from medfw.cli import main
from medfw.evidence.collect import BundleWriter
from medfw.evidence.device_trails import collect_device_trails
from medfw.evidence.spec import ReleaseSpec

from .pki import device_ca
from .trusted import trusted_fleet


def _spec(tmp: Path, trails: Path, ca: Path | None) -> ReleaseSpec:
    return ReleaseSpec(
        root=tmp, name="pump", version="1.1.0", model="pump", chip="esp32c6", images=(), trusted_keys=(),
        sbom=tmp / "sbom.json", device_trails=trails, device_ca=ca,
    )  # fmt: skip


def test_canary_trails_exported_and_rechecked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with trusted_fleet(tmp_path / "fleet") as fleet:
        monkeypatch.setenv("SSL_CERT_FILE", str(fleet.tls.ca))
        monkeypatch.setenv("MEDFW_OTA_TOKEN", fleet.admin.headers["Authorization"].split(" ", 1)[1])
        units = [fleet.unit(f"pump-{i}") for i in range(4)]
        for u in units:
            assert u.cycle() == "idle"
        ro = fleet.rollout(fleet.publish("1.1.0", 2), phases=["2", "100%"], success_threshold=50)
        for u in units:
            assert u.cycle() == "confirmed"
            u.cycle()
        out = tmp_path / "trails"
        code = main(["ota", "device", "trails", "--rollout", str(ro["id"]), "--out", str(out),
                     "--server", fleet.url, "--json"])  # fmt: skip
        capsys.readouterr()
        assert code == 0
        assert sorted(p.name for p in out.iterdir()) == ["pump-0.json", "pump-1.json"]  # the canary phase
        ca = tmp_path / "device-ca.crt"
        ca.write_bytes(fleet.ca.certificate.public_bytes(serialization.Encoding.PEM))
    bundle = tmp_path / "bundle"
    check = collect_device_trails(BundleWriter(bundle, base=tmp_path), _spec(tmp_path, out, ca))
    assert check is not None and check.ok, check
    assert (bundle / "device-trails" / "pump-0.json").is_file()
    # another device CA: refused
    other = tmp_path / "other-ca.crt"
    other.write_bytes(device_ca().certificate.public_bytes(serialization.Encoding.PEM))
    check = collect_device_trails(BundleWriter(tmp_path / "b2", base=tmp_path), _spec(tmp_path, out, other))
    assert check is not None and not check.ok
    # an entry removed from the middle: the chain breaks
    doc: dict[str, Any] = json.loads((out / "pump-1.json").read_text())
    del doc["entries"][3]
    for i, e in enumerate(doc["entries"]):
        e["seq"] = i
    (out / "pump-1.json").write_text(json.dumps(doc))
    check = collect_device_trails(BundleWriter(tmp_path / "b3", base=tmp_path), _spec(tmp_path, out, ca))
    assert check is not None and not check.ok
    assert "pump-1" in check.detail
