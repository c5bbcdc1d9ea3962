"""``medfw ota release attach``: every file is read and checked before the first upload, so a bad one attaches
nothing (the fleet server is never contacted: ``--server`` points at a closed port)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medfw.cli import main

DOCS = Path(__file__).resolve().parents[1] / "vectors" / "release-documents"
CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["ota", "release", "attach", *argv, "--server", CLOSED, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_evidence_needs_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDFW_OTA_TOKEN", "t")
    code, doc = _run(["1", "--evidence", str(tmp_path)], capsys)
    assert code == 2 and doc["error"]["field"] == "--evidence-key"  # type: ignore[index]


def test_a_bundle_that_does_not_verify_attaches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDFW_OTA_TOKEN", "t")
    from medfw.crypto.keys import KeyType, generate_private_key, write_private_key

    key = tmp_path / "evidence.pem"
    write_private_key(generate_private_key(KeyType.ED25519), key)
    assert main(["keys", "export-public", str(key), "--out", str(tmp_path / "evidence.pub.pem")]) == 0
    capsys.readouterr()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"format": "medfw-evidence-manifest/1", "files": []}')
    code, doc = _run(["1", "--evidence", str(bundle), "--evidence-key", str(tmp_path / "evidence.pub.pem")], capsys)
    assert code == 1 and "does not verify" in doc["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--vex", str(DOCS / "advisory-1.1.0.csaf.json")], "attach a CSAF document with --csaf"),
        (["--csaf", str(DOCS / "vex.cdx.json")], "CSAF 2.0 schema"),
        (["--csaf-signature", str(DOCS / "advisory-1.1.0.csaf.json.sig")], "--csaf-signature needs --csaf"),
        (["--vex", str(DOCS / "vex.cdx.json"), "--vex", str(DOCS / "vex.cdx.json")], "two documents of one kind"),
        ([], "nothing to attach"),
    ],
)
def test_bad_input_is_refused_before_any_upload(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDFW_OTA_TOKEN", "t")
    code, doc = _run(["1", *argv], capsys)
    assert code == 2 and message in doc["error"]["message"], doc  # type: ignore[index]


def test_good_files_reach_for_the_server(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFW_OTA_TOKEN", "t")
    argv = ["1", "--vex", str(DOCS / "vex.openvex.json"), "--csaf", str(DOCS / "advisory-1.1.0.csaf.json")]
    code, doc = _run(argv, capsys)
    assert code == 2 and "cannot reach the fleet server" in doc["error"]["message"]  # type: ignore[index]
