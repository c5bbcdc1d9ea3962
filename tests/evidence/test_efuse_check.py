"""eFuse evidence: policy verdict plus whether the unit trusts the release keys (and only them)."""

from __future__ import annotations

import json
from pathlib import Path

from medfw.device import Device
from medfw.device.policy import Policy
from medfw.evidence.efuse_check import check_unit

VECTORS = Path(__file__).parent.parent / "vectors" / "efuse"
DIGEST = bytes(range(32))


def test_production_unit_with_the_release_key_passes() -> None:
    unit = Device.in_memory(chip="esp32c3", key_digests=[DIGEST], flash_encryption=True)
    unit.efuse.burn_secure_version(1, 16)
    r = check_unit(
        unit.efuse.to_espefuse_summary(), policy=Policy.default(), chip="esp32c3", key_digests=[DIGEST], source="u"
    )
    assert r["ok"], r
    assert r["digests"][0]["digest"] == DIGEST.hex() and r["digests"][0]["release_key"]


def test_unit_with_open_slot_and_no_encryption_fails_policy() -> None:
    unit = Device.in_memory(chip="esp32c3", key_digests=[DIGEST], revoke_unused_slots=False)
    r = check_unit(
        unit.efuse.to_espefuse_summary(), policy=Policy.default(), chip="esp32c3", key_digests=[DIGEST], source="u"
    )
    assert not r["ok"]
    assert {"flash_encryption_enabled", "unused_digest_slots_locked"} <= set(r["policy"]["failed"])


def test_real_espefuse_readout_with_another_key_is_foreign() -> None:
    data = json.loads((VECTORS / "esp32c3_locked.json").read_text())
    r = check_unit(data, policy=Policy.default(), chip="esp32c3", key_digests=[DIGEST], source="esp32c3_locked.json")
    assert r["policy"]["ok"]  # the read-out itself is locked down ...
    assert r["release_keys_trusted"] == 0 and r["foreign_keys_trusted"] == 1  # ... but trusts another key
    assert not r["ok"]
    burned = bytes.fromhex(r["digests"][0]["digest"])
    again = check_unit(data, policy=Policy.default(), chip="esp32c3", key_digests=[burned], source="x")
    assert again["ok"]
