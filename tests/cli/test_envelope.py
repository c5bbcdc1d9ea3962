"""The one ``--json`` envelope: results, verification failures, bad input and usage errors all print it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from medfw.cli import main
from medfw.cli._common import emit, finish_json

from ._json import envelope, error

VEC = Path(__file__).resolve().parents[1] / "vectors" / "esp"


def test_result_envelope(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "info", str(VEC / "images/esp_idf_blink_esp32s2.bin"), "--json"]) == 0
    doc = envelope(capsys.readouterr().out)
    assert doc["ok"] is True and doc["exit_code"] == 0
    assert doc["result"]["chip"] == "esp32s2"


def test_bad_input_is_an_error_envelope_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 64)
    assert main(["image", "info", str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    err = error(captured.out)
    assert err["path"] == str(bad)
    assert err["message"] in captured.err


def test_missing_file_is_exit_2_with_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.bin"
    assert main(["verify", "mcuboot", "--key", str(missing), str(missing), "--json"]) == 2
    doc = envelope(capsys.readouterr().out)
    assert doc["exit_code"] == 2 and doc["error"]["path"] == str(missing)


def test_usage_error_with_json_prints_the_envelope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["image", "info", "--json", "--no-such-flag", "x"])
    assert e.value.code == 2
    doc = envelope(capsys.readouterr().out)
    assert doc["exit_code"] == 2
    assert "--no-such-flag" in doc["error"]["message"]


def test_usage_error_without_json_prints_nothing_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["image", "info", "--no-such-flag", "x"])
    assert capsys.readouterr().out == ""


def test_last_emit_wins_and_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(json=True)
    emit(args, {"n": 1})
    emit(args, {"n": 2})
    assert capsys.readouterr().out == ""
    finish_json(args, 1)
    finish_json(args, 1)
    doc = envelope(capsys.readouterr().out)
    assert doc == {"ok": False, "exit_code": 1, "result": {"n": 2}}


def test_emit_now_prints_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(json=True)
    emit(args, {"listening": "http://127.0.0.1:1"}, now=True)
    assert envelope(capsys.readouterr().out)["result"] == {"listening": "http://127.0.0.1:1"}
    finish_json(args, 0)
    assert capsys.readouterr().out == ""


def test_without_json_human_output_is_used(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(json=False)
    emit(args, {"n": 1}, lambda: print("human"))
    finish_json(args, 0)
    assert capsys.readouterr().out == "human\n"
