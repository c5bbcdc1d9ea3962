"""``medfw efuse check``: report, exit codes, policies, and malformed summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medfw.cli import main

from ._json import result as cli_result

VEC = Path(__file__).resolve().parent.parent / "vectors" / "efuse"


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("vector", "code"), [("esp32c3_locked.json", 0), ("esp32_locked.json", 0), ("esp32c3_open.json", 1)]
)
def test_exit_codes(capsys: pytest.CaptureFixture[str], vector: str, code: int) -> None:
    got, out, _ = run(capsys, "efuse", "check", VEC / vector, "--json")
    assert got == code
    data = cli_result(out)
    assert data["ok"] is (code == 0)
    assert len(data["rules"]) == 7


def test_human_report_names_efuses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "efuse", "check", VEC / "esp32c3_open.json", "--chip", "esp32c3")
    assert code == 1
    for name in ("SECURE_BOOT_EN", "DIS_PAD_JTAG", "SPI_BOOT_CRYPT_CNT", "FAIL"):
        assert name in out


def test_single_failure_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads((VEC / "esp32s3_locked.json").read_text())
    data["DIS_USB_JTAG"]["raw_value"] = "0x0"
    (tmp_path / "s.json").write_text(json.dumps(data))
    code, out, _ = run(capsys, "efuse", "check", tmp_path / "s.json", "--chip", "esp32s3", "--json")
    assert code == 1
    report = cli_result(out)
    assert report["failed"] == ["jtag_disabled"]
    jtag = next(r for r in report["rules"] if r["rule"] == "jtag_disabled")
    assert jtag["efuses"] == ["DIS_PAD_JTAG", "DIS_USB_JTAG"]


def test_custom_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yml").write_text(
        "version: 1\nrules:\n  secure_boot_enabled: {}\n  jtag_disabled: {enabled: false}\n"
    )
    code, out, _ = run(capsys, "efuse", "check", VEC / "esp32c3_open.json", "--policy", tmp_path / "p.yml", "--json")
    assert code == 1
    assert cli_result(out)["failed"] == ["secure_boot_enabled"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{broken", "not JSON"),
        (b"[]", "not an espefuse summary"),
        (b'{"A": {"raw_value": "0x1"}}', "cannot tell the chip"),
    ],
)
def test_malformed_summary_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, needle: str
) -> None:
    (tmp_path / "s.json").write_bytes(content)
    code, _, err = run(capsys, "efuse", "check", tmp_path / "s.json")
    assert code == 2
    assert needle in err and "s.json" in err and "Traceback" not in err


def test_bad_policy_and_chip_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yml").write_text("version: 1\nrules: {nope: {}}\n")
    code, _, err = run(capsys, "efuse", "check", VEC / "esp32c3_locked.json", "--policy", tmp_path / "p.yml")
    assert code == 2 and "rules.nope" in err
    code, _, err = run(capsys, "efuse", "check", VEC / "esp32c3_locked.json", "--chip", "esp32")
    assert code == 2
    code, _, err = run(capsys, "efuse", "check", tmp_path / "missing.json")
    assert code == 2 and "missing.json" in err
