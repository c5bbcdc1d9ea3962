"""``medfw efuse check`` rules on summaries made by espefuse itself, and on the device model's export."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.device import Device
from medfw.device.policy import EfuseSummary, Policy, check_summary
from medfw.errors import ConfigError, InputError

from ._espefuse import lock_names, make_summary, make_summary_inprocess, write_key

CHIPS = ("esp32", "esp32c3", "esp32s3", "esp32c6")


def _failed(data: dict[str, dict[str, object]], chip: str, policy: Policy | None = None) -> set[str]:
    report = check_summary(EfuseSummary.from_json(data), policy or Policy.default(), chip=chip)
    return {r.rule for r in report.failed}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    return {chip: write_key(directory, chip) for chip in CHIPS}


@pytest.mark.parametrize("chip", CHIPS)
def test_open_unit_fails_every_rule(tmp_path: Path, keys: dict[str, Path], chip: str) -> None:
    data = make_summary_inprocess(tmp_path, chip, set(), keys[chip], "open")
    report = check_summary(EfuseSummary.from_json(data), Policy.default(), chip=chip)
    statuses = {r.rule: r.status for r in report.results}
    assert not report.passed
    applicable = {r for r, s in statuses.items() if s != "not_applicable"}
    assert {r.rule for r in report.failed} == applicable
    assert "unused_digest_slots_locked" not in applicable  # nothing burned yet: the key rule reports it


@pytest.mark.parametrize("chip", CHIPS)
def test_locked_unit_passes(tmp_path: Path, keys: dict[str, Path], chip: str) -> None:
    """Made with the espefuse command line itself (the other cases use its Python API, which is the same code)."""
    data = make_summary(tmp_path, chip, set(lock_names(chip)), keys[chip], "locked")
    report = check_summary(EfuseSummary.from_json(data), Policy.default(), chip=chip)
    assert report.passed, report.to_dict()
    assert all(r.status in ("pass", "not_applicable") for r in report.results)
    key_rule = next(r for r in report.results if r.rule == "key_digest_burned")
    assert ("BLOCK2" if chip == "esp32" else "BLOCK_KEY0") in key_rule.efuses


@pytest.mark.parametrize(("chip", "missing"), [(c, lock) for c in CHIPS for lock in lock_names(c)])
def test_each_missing_lock_fails_exactly_its_rule(
    tmp_path: Path, keys: dict[str, Path], chip: str, missing: str
) -> None:
    data = make_summary_inprocess(tmp_path, chip, set(lock_names(chip)) - {missing}, keys[chip], "missing")
    assert _failed(data, chip) == {missing}


@pytest.mark.parametrize(
    ("vector", "chip", "passed"),
    [
        ("esp32c3_open.json", "esp32c3", False),
        ("esp32c3_locked.json", "esp32c3", True),
        ("esp32s3_locked.json", "esp32s3", True),
        ("esp32_locked.json", "esp32", True),
    ],
)
def test_stored_vectors(vectors: Path, vector: str, chip: str, passed: bool) -> None:
    data = json.loads((vectors / "efuse" / vector).read_text())
    report = check_summary(EfuseSummary.from_json(data), Policy.default())  # chip detected from the fields
    assert report.passed is passed
    assert report.chip == ("esp32" if chip == "esp32" else "key-purpose chip")


def test_revoked_or_writable_digest_is_not_usable(vectors: Path) -> None:
    data = json.loads((vectors / "efuse" / "esp32c3_locked.json").read_text())
    data["SECURE_BOOT_KEY_REVOKE0"]["raw_value"] = "0x1"
    assert _failed(data, "esp32c3") == {"key_digest_burned"}
    data = json.loads((vectors / "efuse" / "esp32c3_locked.json").read_text())
    data["BLOCK_KEY0"]["writeable"] = True
    assert _failed(data, "esp32c3") == {"key_digest_burned"}


def test_secure_download_mode_and_policy_options(vectors: Path) -> None:
    data = json.loads((vectors / "efuse" / "esp32c3_locked.json").read_text())
    data["DIS_DOWNLOAD_MODE"]["raw_value"] = "0x0"
    data["ENABLE_SECURITY_DOWNLOAD"]["raw_value"] = "0x1"
    assert _failed(data, "esp32c3") == set()
    strict = Policy.from_yaml(
        "version: 1\nrules:\n  download_mode_restricted:\n    allow_secure_download: false\n"
        "  anti_rollback_enabled:\n    min_secure_version: 2\n"
    )
    assert _failed(data, "esp32c3", strict) == {"download_mode_restricted", "anti_rollback_enabled"}
    report = check_summary(EfuseSummary.from_json(data), strict)
    assert sum(r.status == "skipped" for r in report.results) == 5


def test_write_protected_counter_cannot_advance(vectors: Path) -> None:
    data = json.loads((vectors / "efuse" / "esp32c3_locked.json").read_text())
    data["SECURE_VERSION"]["writeable"] = False
    assert _failed(data, "esp32c3") == {"anti_rollback_enabled"}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("version: 2\nrules: {jtag_disabled: {}}\n", "version"),
        ("version: 1\nrules: {}\n", "rules"),
        ("version: 1\nrules: {no_such_rule: {}}\n", "rules.no_such_rule"),
        ("version: 1\nrules: {jtag_disabled: {min_keys: 1}}\n", "rules.jtag_disabled.min_keys"),
        ("version: 1\nrules: {key_digest_burned: {min_keys: yes}}\n", "rules.key_digest_burned.min_keys"),
        ("version: 1\nrules: {jtag_disabled: {enabled: 1}}\n", "rules.jtag_disabled.enabled"),
        ("version: 1\nrules: [1]\n", "rules"),
        ("version: 1\nrules: {jtag_disabled: {}}\nextra: 1\n", "extra"),
        ("version: [\n", None),
    ],
)
def test_bad_policies_are_refused(text: str, field: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        Policy.from_yaml(text, path="p.yml")
    assert info.value.field == field
    assert info.value.path == "p.yml"


@pytest.mark.parametrize(
    "doc",
    [[], {}, {"SECURE_BOOT_EN": 1}, {"SECURE_BOOT_EN": {"raw_value": "zz"}}, {"X": {"value": "text"}}],
)
def test_malformed_summaries_are_input_errors(doc: object) -> None:
    with pytest.raises(InputError):
        check_summary(EfuseSummary.from_json(doc, path="s.json"), Policy.default())


def test_chip_must_match_the_summary(vectors: Path) -> None:
    data = json.loads((vectors / "efuse" / "esp32_locked.json").read_text())
    with pytest.raises(InputError):
        check_summary(EfuseSummary.from_json(data), Policy.default(), chip="esp32c3")
    with pytest.raises(InputError):
        check_summary(EfuseSummary.from_json(data), Policy.default(), chip="esp8266")


def test_missing_field_is_named(vectors: Path) -> None:
    data = json.loads((vectors / "efuse" / "esp32c3_locked.json").read_text())
    del data["SPI_BOOT_CRYPT_CNT"]
    with pytest.raises(InputError) as info:
        check_summary(EfuseSummary.from_json(data, path="s.json"), Policy.default())
    assert info.value.field == "SPI_BOOT_CRYPT_CNT"


@pytest.mark.parametrize("chip", CHIPS)
def test_device_model_export_runs_through_the_check(chip: str) -> None:
    device = Device.in_memory(chip=chip, key_digests=[b"\x42" * 32], flash_encryption=True)
    summary = device.efuse.to_espefuse_summary(chip)
    # fresh unit: everything is locked but the counter has not advanced yet (first boot burns it)
    assert _failed(summary, chip) == {"anti_rollback_enabled"}
    device.efuse.burn_secure_version(1, device.counter_bits)
    assert _failed(device.efuse.to_espefuse_summary(chip), chip) == set()
    plain = Device.in_memory(chip=chip, key_digests=[b"\x42" * 32], revoke_unused_slots=False)
    plain.efuse.burn_secure_version(1, plain.counter_bits)
    expected = {"flash_encryption_enabled"} | ({"unused_digest_slots_locked"} if chip != "esp32" else set())
    assert _failed(plain.efuse.to_espefuse_summary(chip), chip) == expected


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["SECURE_BOOT_EN", "KEY_PURPOSE_0", "ABS_DONE_1", "BLOCK2", "X"]), _json))
def test_summary_parser_fails_cleanly(doc: dict[str, object]) -> None:
    with contextlib.suppress(InputError):
        check_summary(EfuseSummary.from_json(doc), Policy.default())
