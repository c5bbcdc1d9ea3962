"""``medfw sbom generate | check | diff`` from the command line."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from medfw.audit.sink import MemorySink
from medfw.cli import main

from ._json import result as cli_result

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "device"
FIXED = ["--serial", "3e671687-395b-41f5-a30f-a58921a69b79", "--timestamp", "2025-01-02T03:04:05Z"]


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return cli_result(capsys.readouterr().out)


def test_generate_then_check_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fw.cdx.json"
    assert main(["sbom", "generate", "--idf-build", str(EXAMPLE / "build"), "--out", str(out), "--json", *FIXED]) == 0
    result = _json(capsys)
    assert result["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert result["serial"] == "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79"
    assert result["warnings"] == []
    assert main(["sbom", "check", str(out), "--json"]) == 0
    report = _json(capsys)
    assert report["ok"] is True
    assert report["schema"]["ok"] is True


def test_generate_is_byte_identical_with_fixed_identity(tmp_path: Path) -> None:
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    for out in (a, b):
        assert (
            main(
                [
                    "sbom",
                    "generate",
                    "--idf-build",
                    str(EXAMPLE / "build"),
                    "--format",
                    "xml",
                    "--out",
                    str(out),
                    *FIXED,
                ]
            )
            == 0
        )
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes().startswith(b"<?xml")


def test_binary_evidence_warnings_and_failed_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fw = tmp_path / "fw.bin"
    fw.write_bytes(bytes(64) + b"Mbed TLS 3.6.0\x00" + bytes(16) + b"BusyBox v1.36.1 (2024-01-01)\x00")
    out = tmp_path / "fw.cdx.json"
    code = main(
        ["sbom", "generate", "--idf-build", str(EXAMPLE / "build"), "--binary", str(fw), "--out", str(out), "--json"]
    )
    assert code == 0
    warnings = _json(capsys)["warnings"]
    assert any("declared 3.6.1, found 3.6.0 in fw.bin" in w for w in warnings)
    assert any("'busybox' 1.36.1 found in a binary" in w for w in warnings)
    assert main(["sbom", "check", str(out)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_generate_records_audit_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = MemorySink()
    monkeypatch.setattr("medfw.cli.sbom.audit_sink", lambda _args: sink)
    out = tmp_path / "fw.cdx.json"
    assert main(["sbom", "generate", "--idf-build", str(EXAMPLE / "build"), "--out", str(out), *FIXED]) == 0
    (event,) = sink.of_type("sbom.generate")
    assert event.outcome == "success"
    assert event.objects["sbom_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert event.objects["serial"] == "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79"
    assert main(["sbom", "generate", "--idf-build", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    assert sink.of_type("sbom.generate")[-1].outcome == "failure"
    capsys.readouterr()


def test_missing_project_description_exits_2_without_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fw.cdx.json"
    assert main(["sbom", "generate", "--idf-build", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "project_description.json" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_manifest_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "dev"
    shutil.copytree(EXAMPLE, root)
    manifest = root / "esp-idf/components/lwip/lwip/sbom.yml"
    manifest.write_text(manifest.read_text().replace("license: BSD-3-Clause", "license: BSD 3 clause"))
    out = tmp_path / "fw.cdx.json"
    assert main(["sbom", "generate", "--idf-build", str(root / "build"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "sbom.yml" in err
    assert "field license" in err
    assert not out.exists()


def test_generic_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "medfw-sbom.yml"
    manifest.write_text(
        "name: fw\nversion: '1.0'\nsupplier: 'Organization: Example'\ncomponents:\n"
        "  - name: zlib\n    version: 1.3.1\n    cpe: cpe:2.3:a:zlib:zlib:{}:*:*:*:*:*:*:*\n"
        "    supplier: 'Organization: zlib'\n    support-level: actively-maintained\n    end-of-support: unknown\n"
    )
    out = tmp_path / "fw.cdx.json"
    assert main(["sbom", "generate", "--manifest", str(manifest), "--out", str(out), "--json"]) == 0
    assert _json(capsys)["components"] == 1
    assert main(["sbom", "check", str(out), "--json"]) == 0


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["sbom", "generate", "--idf-build", "a", "--manifest", "b", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["sbom", "generate", "--idf-build", "a", "--out", str(tmp_path / "x"), "--timestamp", "yesterday"])
    assert e.value.code == 2
    capsys.readouterr()


def test_check_garbage_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ nope")
    assert main(["sbom", "check", str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err


def test_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert main(["sbom", "generate", "--idf-build", str(EXAMPLE / "build"), "--out", str(old), *FIXED]) == 0
    root = tmp_path / "dev"
    shutil.copytree(EXAMPLE, root)
    manifest = root / "esp-idf/components/lwip/lwip/sbom.yml"
    manifest.write_text(manifest.read_text().replace("version: 2.2.0", "version: 2.2.1"))
    assert main(["sbom", "generate", "--idf-build", str(root / "build"), "--out", str(new), *FIXED]) == 0
    capsys.readouterr()
    assert main(["sbom", "diff", str(old), str(new), "--json"]) == 0
    d = _json(capsys)
    assert d["added"] == d["removed"] == []
    assert [(c["bom-ref"], c["old_version"], c["version"]) for c in d["changed"]] == [
        ("component:lwip/lwip", "2.2.0", "2.2.1")
    ]
    assert main(["sbom", "diff", str(old), str(new)]) == 0
    assert "~ lwip 2.2.0 -> 2.2.1" in capsys.readouterr().out
