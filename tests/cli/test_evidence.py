"""``medfw evidence build | verify`` from the command line: exit codes, --json, errors naming files."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from medfw.audit.query import list_entries
from medfw.cli import main

from ._json import result as cli_result


def _release_module() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "evidence" / "_release.py"
    spec = importlib.util.spec_from_file_location("medfw_test_evidence_release", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> object:
    return _release_module().make_release(tmp_path_factory.mktemp("cli-evidence") / "release")


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return cli_result(capsys.readouterr().out)


def test_build_then_verify(release: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root: Path = release.root  # type: ignore[attr-defined]
    bundle = tmp_path / "bundle"
    ops = tmp_path / "ops.db"
    assert main(["audit", "init", str(ops), "--key-out", str(tmp_path / "ops.key")]) == 0
    capsys.readouterr()
    code = main(["evidence", "build", "--release", str(root), "--out", str(bundle), "--audit-log", str(ops), "--json"])
    built = _json(capsys)
    assert code == 0, built
    assert built["ok"] is True and built["files"] == 27
    (event,) = [e for e in list_entries(ops) if e.type == "evidence.build"]
    assert event.body["objects"]["manifest_sha256"] == built["manifest_sha256"]
    assert event.body["outcome"] == "success"

    pub = str(release.evidence_pub)  # type: ignore[attr-defined]
    key = str(release.audit_key)  # type: ignore[attr-defined]
    assert main(["evidence", "verify", str(bundle), "--key", pub, "--audit-key", key, "--json"]) == 0
    verified = _json(capsys)
    assert verified["ok"] and verified["key_pinned"] and verified["problems"] == []

    assert main(["evidence", "verify", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "verified" in out and "not pinned" in out

    # an existing bundle is not overwritten without --force
    assert main(["evidence", "build", "--release", str(root), "--out", str(bundle)]) == 2
    assert "use --force" in capsys.readouterr().err

    # tamper: the report and the SBOM are named
    (bundle / "report.html").write_text("<html>forged</html>")
    (bundle / "sbom/sbom.cdx.json").unlink()
    assert main(["evidence", "verify", str(bundle), "--key", pub]) == 1
    out = capsys.readouterr().out
    assert "report.html: SHA-256 differs from the manifest" in out
    assert "sbom/sbom.cdx.json: listed in the manifest but missing from the bundle" in out
    assert "Traceback" not in out


def test_bad_release_exits_2_and_names_the_key(
    release: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "release"
    shutil.copytree(release.root, root)  # type: ignore[attr-defined]
    text = (root / "release.yml").read_text().replace("sbom: sbom.cdx.json\n", "")
    (root / "release.yml").write_text(text)
    assert main(["evidence", "build", "--release", str(root), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "release.yml" in err and "field sbom" in err
    assert not (tmp_path / "b").exists()


def test_missing_image_exits_2_without_output(
    release: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "release"
    shutil.copytree(release.root, root)  # type: ignore[attr-defined]
    (root / "images/bootloader.bin").unlink()
    assert main(["evidence", "build", "--release", str(root), "--out", str(tmp_path / "b")]) == 2
    assert "bootloader.bin" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]


def test_verify_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evidence", "verify", str(tmp_path / "none")]) == 2
    assert "not an evidence bundle directory" in capsys.readouterr().err
    assert main(["evidence"]) == 2
