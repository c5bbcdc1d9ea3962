"""README.md as a contract: every ``sh`` block under "Quick start" runs as written, in order, in one scratch
directory, with ``medfw`` on PATH the way README says.

Fixture map — what stands for the inputs a real project brings (nothing else is prepared or replaced):

| README input | fixture |
|---|---|
| `.venv/bin/activate` | the virtual environment running these tests |
| `sdkconfig`, `build/` (`project_description.json`, linker map), `esp-idf/`, `managed_components/`, `sbom.yml`, `dependencies.lock` | a copy of `examples/device` (the ESP-IDF project) |
| `build/app.bin` | the app image that project's build describes: infusion-pump-fw 1.0.0 for esp32c3, ESP-IDF v5.4, secure_version 1 (`build_app_image`) |
| `build/bootloader.bin`, `build/factory.bin` | a bootloader image and a factory app 0.9.0 (secure_version 1) for the same chip |
| `zephyr.bin` | 4 KiB of firmware bytes (a raw Zephyr binary) |
| `summary.json` | `tests/vectors/efuse/esp32c3_locked.json` (`espefuse summary --format json` of a locked unit) |
| `nvd/`, `cve5/`, `osv/`, `kev.json` | `tests/vectors/vuln` (NVD-shaped, CVE 5, OSV extracts, CISA KEV) |
| `release/` | the release directory of `tests/evidence/_release.py` (keys, signed images, bound SBOM, sdkconfig, feeds, decisions, audit log) |
| `old.cdx.json` | `tests/vectors/sbom/example-device.cdx.json` |
| port `8080` | a free loopback port; a command ending in ` &` runs in the background, the next line waits for its `/healthz`, and it is stopped when the block ends |
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from medfw.image.esp import build_app_image

REPO = Path(__file__).resolve().parents[1]
VEC = REPO / "tests" / "vectors"


def quick_start_blocks(text: str) -> list[str]:
    """The ``sh`` blocks of the "Quick start" section, in order."""
    start = text.index("\n## Quick start")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.DOTALL)


def _release_module() -> ModuleType:
    path = REPO / "tests" / "evidence" / "_release.py"
    spec = importlib.util.spec_from_file_location("medfw_test_readme_release", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _fixtures(work: Path) -> None:
    shutil.copytree(REPO / "examples" / "device", work, dirs_exist_ok=True)
    app = build_app_image(chip="esp32c3", version="1.0.0", secure_version=1, project_name="infusion-pump-fw")
    (work / "build" / "app.bin").write_bytes(app)
    boot = build_app_image(chip="esp32c3", version="bootloader", secure_version=0, project_name="bootloader")
    (work / "build" / "bootloader.bin").write_bytes(boot)
    factory = build_app_image(chip="esp32c3", version="0.9.0", secure_version=1, project_name="infusion-pump-fw")
    (work / "build" / "factory.bin").write_bytes(factory)
    (work / "zephyr.bin").write_bytes(bytes(range(256)) * 16)
    shutil.copyfile(VEC / "efuse" / "esp32c3_locked.json", work / "summary.json")
    for name in ("nvd", "cve5", "osv"):
        shutil.copytree(VEC / "vuln" / name, work / name)
    shutil.copyfile(VEC / "vuln" / "kev" / "known_exploited_vulnerabilities.json", work / "kev.json")
    _release_module().make_release(work / "release")
    shutil.copyfile(VEC / "sbom" / "example-device.cdx.json", work / "old.cdx.json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _script(block: str, port: int) -> str:
    """The block as a bash script: strict mode, the fixture port, background servers awaited and stopped."""
    activate = Path(sys.prefix) / "bin" / "activate"
    lines = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    waiting = False
    for raw in block.replace("\\\n", " ").splitlines():
        line = raw.replace(". .venv/bin/activate", f". {activate}").replace("8080", str(port))
        if waiting and line.strip():
            lines.append(
                f"for i in $(seq 100); do python -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/healthz')\""
                " 2>/dev/null && break; sleep 0.2; done"
            )
            waiting = False
        lines.append(line)
        waiting = waiting or line.split("#")[0].rstrip().endswith("&")
    return "\n".join(lines) + "\n"


def test_blocks_are_found() -> None:
    blocks = quick_start_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) == 4
    assert "activate" in blocks[0] and "medfw build check" in blocks[1] and "medfw ota serve" in blocks[3]


@pytest.mark.slow
def test_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _fixtures(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFW_")}
    env |= {"HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}", "COLUMNS": "120"}
    port = _free_port()
    for i, block in enumerate(quick_start_blocks((REPO / "README.md").read_text(encoding="utf-8"))):
        proc = subprocess.run(
            ["bash", "-x", "-c", _script(block, port)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, f"README quick-start block {i} failed:\n{proc.stderr[-4000:]}"
    # what the blocks claim happened, checked independently
    assert (work / "bundle" / "report.pdf").is_file() and (work / "findings.html").is_file()
    assert (work / "dev").is_dir() and (work / "signed.bin").is_file() and (work / "vex.json").is_file()
