"""`medfw build check`: the real ESP-IDF v5.4 default (insecure) configuration, a hardened one, and one
configuration per rule broken — each rule fails in exactly one of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.buildcfg import RULES, BuildPolicy, RuleId, Status, check_config, load_config, parse_sdkconfig
from medfw.cli import main
from medfw.errors import ConfigError

VEC = Path(__file__).resolve().parents[1] / "vectors" / "buildcfg"
HARDENED = (VEC / "hardened.sdkconfig").read_text()

NOT_SET = "# CONFIG_{} is not set"

#: rule -> (old line -> new lines) edits of hardened.sdkconfig, each what menuconfig would write for the change
#: (symbols whose dependencies go off disappear; options that become visible appear as "is not set").
BREAK: dict[RuleId, dict[str, list[str]]] = {
    RuleId.SECURE_BOOT_V2: {
        "CONFIG_SECURE_BOOT=y": [NOT_SET.format("SECURE_BOOT")],
        "CONFIG_SECURE_SIGNED_ON_BOOT=y": [],
        "CONFIG_SECURE_SIGNED_ON_UPDATE=y": [],
        "CONFIG_SECURE_SIGNED_APPS=y": [NOT_SET.format("SECURE_SIGNED_APPS_NO_SECURE_BOOT")],
        "CONFIG_SECURE_BOOT_V2_RSA_ENABLED=y": [],
        "CONFIG_SECURE_SIGNED_APPS_RSA_SCHEME=y": [],
        "CONFIG_SECURE_BOOT_V2_ENABLED=y": [],
        NOT_SET.format("SECURE_BOOT_BUILD_SIGNED_BINARIES"): [],
        NOT_SET.format("SECURE_BOOT_ENABLE_AGGRESSIVE_KEY_REVOKE"): [],
        NOT_SET.format("SECURE_BOOT_V2_ALLOW_EFUSE_RD_DIS"): [],
        NOT_SET.format("SECURE_BOOT_INSECURE"): [],
    },
    RuleId.APP_ROLLBACK: {
        "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y": [NOT_SET.format("BOOTLOADER_APP_ROLLBACK_ENABLE")],
        "CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y": [],
        "CONFIG_BOOTLOADER_APP_SECURE_VERSION=1": [],
        "CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD=16": [],
        NOT_SET.format("BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE"): [],
        "CONFIG_APP_ROLLBACK_ENABLE=y": [NOT_SET.format("APP_ROLLBACK_ENABLE")],
        "CONFIG_APP_ANTI_ROLLBACK=y": [],
        "CONFIG_APP_SECURE_VERSION=1": [],
        "CONFIG_APP_SECURE_VERSION_SIZE_EFUSE_FIELD=16": [],
        NOT_SET.format("EFUSE_SECURE_VERSION_EMULATE"): [],
    },
    RuleId.APP_ANTI_ROLLBACK: {
        "CONFIG_BOOTLOADER_APP_SECURE_VERSION=1": ["CONFIG_BOOTLOADER_APP_SECURE_VERSION=0"],
        "CONFIG_APP_SECURE_VERSION=1": ["CONFIG_APP_SECURE_VERSION=0"],
    },
    RuleId.FLASH_ENCRYPTION_RELEASE: {
        "CONFIG_SECURE_FLASH_ENC_ENABLED=y": [NOT_SET.format("SECURE_FLASH_ENC_ENABLED")],
        NOT_SET.format("SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT"): [],
        "CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y": [],
        "CONFIG_SECURE_FLASH_HAS_WRITE_PROTECTION_CACHE=y": [],
        NOT_SET.format("SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE"): [],
        "CONFIG_SECURE_FLASH_ENCRYPT_ONLY_IMAGE_LEN_IN_APP_PART=y": [],
        "CONFIG_SECURE_FLASH_CHECK_ENC_EN_IN_APP=y": [],
        "CONFIG_FLASH_ENCRYPTION_ENABLED=y": [NOT_SET.format("FLASH_ENCRYPTION_ENABLED")],
    },
    RuleId.JTAG_DISABLED: {
        NOT_SET.format("SECURE_BOOT_INSECURE"): ["CONFIG_SECURE_BOOT_INSECURE=y"],
        NOT_SET.format("SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE"): [
            "CONFIG_SECURE_BOOT_ALLOW_JTAG=y",
            NOT_SET.format("SECURE_BOOT_ALLOW_SHORT_APP_PARTITION"),
            NOT_SET.format("SECURE_BOOT_ALLOW_UNUSED_DIGEST_SLOTS"),
            "CONFIG_SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE=y",  # selected by SECURE_BOOT_ALLOW_JTAG
        ],
    },
    RuleId.ROM_DOWNLOAD_MODE: {
        "CONFIG_SECURE_ENABLE_SECURE_ROM_DL_MODE=y": [NOT_SET.format("SECURE_ENABLE_SECURE_ROM_DL_MODE")],
        NOT_SET.format("SECURE_INSECURE_ALLOW_DL_MODE"): ["CONFIG_SECURE_INSECURE_ALLOW_DL_MODE=y"],
    },
    RuleId.NO_HTTP_OTA: {
        NOT_SET.format("ESP_HTTPS_OTA_ALLOW_HTTP"): ["CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP=y"],
        NOT_SET.format("OTA_ALLOW_HTTP"): ["CONFIG_OTA_ALLOW_HTTP=y"],
    },
    RuleId.NO_INSECURE_ALLOWANCES: {
        NOT_SET.format("SECURE_BOOT_INSECURE"): ["CONFIG_SECURE_BOOT_INSECURE=y"],
        NOT_SET.format("SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE"): [
            NOT_SET.format("SECURE_BOOT_ALLOW_JTAG"),
            "CONFIG_SECURE_BOOT_ALLOW_SHORT_APP_PARTITION=y",
            NOT_SET.format("SECURE_BOOT_ALLOW_UNUSED_DIGEST_SLOTS"),
            NOT_SET.format("SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE"),
        ],
    },
}


def _broken(rule: RuleId) -> str:
    lines = HARDENED.splitlines()
    for old, new in BREAK[rule].items():
        assert lines.count(old) == 1, old
        i = lines.index(old)
        lines[i : i + 1] = new
    return "\n".join(lines) + "\n"


def _statuses(text: str) -> dict[RuleId, Status]:
    return {r.rule: r.status for r in check_config(parse_sdkconfig(text)).results}


def test_every_rule_has_a_broken_configuration() -> None:
    assert set(BREAK) == set(RULES)


def test_default_v54_configuration_fails_and_json_agrees(tmp_path: Path) -> None:
    text = check_config(load_config(VEC / "default.sdkconfig"))
    js = check_config(load_config(VEC / "default.sdkconfig.json"))
    assert not text.passed and text.config.target == "esp32c3" and text.config.idf_version == "5.4.0"
    statuses = {r.rule: r.status for r in text.results}
    assert statuses == {r.rule: r.status for r in js.results}
    assert {r for r, s in statuses.items() if s is Status.FAIL} == {
        RuleId.SECURE_BOOT_V2,
        RuleId.APP_ROLLBACK,
        RuleId.FLASH_ENCRYPTION_RELEASE,
        RuleId.JTAG_DISABLED,
        RuleId.ROM_DOWNLOAD_MODE,
    }
    assert statuses[RuleId.APP_ANTI_ROLLBACK] is Status.BLOCKED  # depends on app rollback, as in Kconfig
    assert statuses[RuleId.NO_HTTP_OTA] is statuses[RuleId.NO_INSECURE_ALLOWANCES] is Status.PASS


def test_hardened_configuration_passes_in_both_forms(tmp_path: Path) -> None:
    result = check_config(parse_sdkconfig(HARDENED))
    assert result.passed and all(r.status is Status.PASS for r in result.results)
    # the same configuration as kconfgen's sdkconfig.json, read from a build directory
    build = tmp_path / "build"
    (build / "config").mkdir(parents=True)
    values = dict(parse_sdkconfig(HARDENED).values)
    (build / "config" / "sdkconfig.json").write_text(json.dumps(values))
    assert check_config(load_config(build)).passed


@pytest.mark.parametrize("rule", list(RuleId))
def test_each_broken_rule_fails_alone(rule: RuleId) -> None:
    statuses = _statuses(_broken(rule))
    assert [r for r, s in statuses.items() if s is Status.FAIL] == [rule]
    blocked = [r for r, s in statuses.items() if s is Status.BLOCKED]
    assert blocked == ([RuleId.APP_ANTI_ROLLBACK] if rule is RuleId.APP_ROLLBACK else [])


def test_each_rule_fails_exactly_once_over_the_broken_set() -> None:
    fails = dict.fromkeys(RuleId, 0)
    for broken in RuleId:
        for r, s in _statuses(_broken(broken)).items():
            fails[r] += s is Status.FAIL
    assert fails == dict.fromkeys(RuleId, 1)


def test_cli_exit_codes_json_and_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "check", str(VEC / "default.sdkconfig"), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)["result"]
    sb = next(r for r in data["rules"] if r["rule"] == "secure-boot-v2")
    assert sb["kconfig"][0] == "CONFIG_SECURE_BOOT" and sb["symbols"]["CONFIG_SECURE_BOOT"] is False
    assert sb["protects"] and sb["property"].startswith("Secure boot")
    hardened = tmp_path / "sdkconfig"
    hardened.write_text(HARDENED)
    assert main(["build", "check", str(hardened)]) == 0
    assert "PASS" in capsys.readouterr().out
    # a policy may raise the minimum secure version, or switch a rule off
    policy = tmp_path / "policy.yml"
    policy.write_text("version: 1\nrules:\n  app-anti-rollback: {min_secure_version: 2}\n  secure-boot-v2: {}\n")
    assert main(["build", "check", str(hardened), "--policy", str(policy), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)["result"]
    by_rule = {r["rule"]: r for r in data["rules"]}
    assert by_rule["app-anti-rollback"]["status"] == "fail" and "at least 2" in by_rule["app-anti-rollback"]["message"]
    assert by_rule["secure-boot-v2"]["status"] == "pass" and by_rule["no-http-ota"]["status"] == "skipped"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CONFIG_IDF_TARGET=esp32c3\n", "expected y, an integer or a quoted string"),
        ('CONFIG_IDF_TARGET="esp32c3"\nSECURE_BOOT=y\n', "line 2 is not a CONFIG_NAME=VALUE setting"),
        ("CONFIG_SECURE_BOOT=y\n", "CONFIG_IDF_TARGET is missing"),
        ('CONFIG_IDF_TARGET="esp32c3"\nCONFIG_SECURE_BOOT=y\n# CONFIG_SECURE_BOOT is not set\n', "line 3"),
        ("\x00", "NUL"),
    ],
)
def test_not_an_sdkconfig_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    p = tmp_path / "sdkconfig"
    p.write_text(text)
    assert main(["build", "check", str(p)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(p) in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1]", "must be a JSON object"),
        ('{"IDF_TARGET": "esp32c3", "X": [1]}', "X is list"),
        ('{"SECURE_BOOT": true}', "CONFIG_IDF_TARGET is missing"),
        ("{nope", "not JSON"),
    ],
)
def test_bad_sdkconfig_json(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "sdkconfig.json"
    p.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(p)


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ("version: 1\nrules:\n  secure-boot-v3: {}\n", "rules.secure-boot-v3"),
        ("version: 1\nrules:\n  app-anti-rollback: {min_secure_version: one}\n", "rules.app-anti-rollback.min"),
        ("version: 1\nrules:\n  jtag-disabled: {strict: true}\n", "rules.jtag-disabled.strict"),
        ("version: 2\nrules: {}\n", "version"),
        ("version: 1\nrules: [a]\n", "rules"),
    ],
)
def test_bad_policy_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, field: str
) -> None:
    p = tmp_path / "policy.yml"
    p.write_text(policy)
    assert main(["build", "check", str(VEC / "default.sdkconfig"), "--policy", str(p)]) == 2
    err = capsys.readouterr().err
    assert field in err and str(p) in err


def test_build_directory_without_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no build configuration here"):
        load_config(tmp_path)
    (tmp_path / "project_description.json").write_text(json.dumps({"config_file": "../missing/sdkconfig"}))
    with pytest.raises(ConfigError, match="config_file does not exist"):
        load_config(tmp_path)


def test_default_policy_enables_every_rule() -> None:
    assert set(BuildPolicy.default().enabled) == set(RuleId)


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet='CONFIG_ABSEUR=yn#"0x19 \n\\', max_size=200))
def test_parser_accepts_or_names_the_problem(text: str) -> None:
    try:
        config = parse_sdkconfig(text)
    except ConfigError as e:
        error = e
    else:
        assert config.target
        return
    assert error.path == "sdkconfig" and error.message
