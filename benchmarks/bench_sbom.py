"""SBOM benchmark: a synthetic 2,000-component ESP-IDF build and a 16 MiB binary scan.

Side by side with Espressif's esp-idf-sbom (``pip install esp-idf-sbom``, the ``bench`` extra) on the same
build when it is installed: both tools run as command-line programs producing CycloneDX 1.6 JSON with only linked
components (esp-idf-sbom: ``create --format cyclonedx-json --rem-unused --no-guess``, with an empty
``SBOM_EXCLUDED_CVES_FILE`` so it does not go to the network). esp-idf-sbom has no binary scanner, so the scan
row has no reference.

Run: ``python benchmarks/bench_sbom.py``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from medfw.sbom import generate_from_idf_build, scan_binary, serialize

REPEAT = 3
SCAN_SIZE = 16 * 1024 * 1024


def make_build(root: Path, n: int) -> Path:
    """Create an ESP-IDF tree with ``n`` components (each with an sbom.yml) and a build directory; 90% linked."""
    idf = root / "esp-idf"
    project = root / "proj"
    build = project / "build"
    build.mkdir(parents=True)
    (project / "sdkconfig").write_text("CONFIG_FEATURE_A=y\n")
    (build / "config").mkdir()
    (build / "config" / "sdkconfig.json").write_text(json.dumps({"FEATURE_A": True}))
    info: dict[str, dict[str, object]] = {}
    linked: list[str] = []
    for i in range(n):
        name = f"comp{i:04d}"
        d = idf / "components" / name
        (d / "src").mkdir(parents=True)
        (d / "sbom.yml").write_text(
            f"name: lib{i}\nversion: '1.{i % 10}.{i % 7}'\n"
            f"cpe: cpe:2.3:a:vendor{i % 50}:lib{i}:{{}}:*:*:*:*:*:*:*\n"
            "supplier: 'Organization: Example Vendor'\nlicense: Apache-2.0\n"
            "cve-exclude-list:\n  - cve: CVE-2024-0001\n    reason: not applicable\n"
        )
        if i % 10 == 0:
            sub = d / "third_party"
            sub.mkdir()
            (sub / "sbom.yml").write_text(
                f"name: vendored{i}\nversion: '2.0.{i}'\nif: FEATURE_A\nsupplier: 'Organization: Upstream'\n"
            )
        reqs = [f"comp{j:04d}" for j in (i + 1, i + 7) if j < n]
        info[name] = {
            "alias": f"idf::{name}",
            "target": f"___idf_{name}",
            "prefix": "idf",
            "dir": str(d),
            "type": "LIBRARY",
            "lib": f"__idf_{name}",
            "reqs": reqs,
            "priv_reqs": [],
            "managed_reqs": [],
            "managed_priv_reqs": [],
            "file": str(build / "esp-idf" / name / f"lib{name}.a"),
            "sources": [],
            "include_dirs": [],
        }
        if i % 10 != 9:
            linked.append(name)
    pd = {
        "version": "1.3",
        "project_name": "bench",
        "project_version": "1.0.0",
        "project_path": str(project),
        "idf_path": str(idf),
        "build_dir": str(build),
        "config_file": str(project / "sdkconfig"),
        "app_elf": "bench.elf",
        "app_bin": "bench.bin",
        "git_revision": "v5.5.1",
        "target": "esp32",
        "c_compiler": "",
        "common_component_reqs": [],
        "build_components": sorted(info),
        "build_component_paths": [info[k]["dir"] for k in sorted(info)],
        "build_component_info": info,
        "all_component_info": info,
    }
    (build / "project_description.json").write_text(json.dumps(pd, indent=1))
    lines = ["Archive member included to satisfy reference by file (symbol)", ""]
    for name in linked:
        lines += [f"esp-idf/{name}/lib{name}.a(x.c.obj)", "                              main.c.obj (sym)"]
    (build / "bench.map").write_text("\n".join([*lines, "", "Discarded input sections", ""]) + "\n")
    return build


def make_blob(size: int) -> bytes:
    rnd = random.Random(42)
    data = bytearray(rnd.randbytes(size))
    strings = [
        b"Mbed TLS 3.6.2",
        b"OpenSSL 3.0.13 30 Jan 2024",
        b"wolfSSL 5.6.6",
        b"libcurl/8.4.0",
        b" deflate 1.3.1 Copyright 1995-2024 Jean-loup Gailly and Mark Adler ",
        b"lwIP/2.1.3",
        b"FreeRTOS Kernel V10.5.1",
        b"BusyBox v1.36.1 (2024-01-01)",
        b"expat_2.6.2",
        b" libpng version 1.6.43 - February 23, 2024\n",
    ]
    for s in strings:
        pos = rnd.randrange(1024, size - 1024)
        data[pos - 1 : pos + len(s) + 1] = b"\x00" + s + b"\x00"
    return bytes(data)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    times: list[float] = []
    result: object = None
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def run_cli(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def esp_idf_sbom_bin() -> str | None:
    exe = Path(sys.executable).with_name("esp-idf-sbom")
    return str(exe) if exe.exists() else shutil.which("esp-idf-sbom")


def main() -> None:
    rows: list[tuple[str, str, str, str, str]] = []
    medfw_cli = str(Path(sys.executable).with_name("medfw"))
    reference = esp_idf_sbom_bin()
    with tempfile.TemporaryDirectory(prefix="medfw-bench-sbom-") as tmp:
        tmpdir = Path(tmp)
        empty = tmpdir / "excluded_cves.yaml"
        empty.write_text("{}\n")
        env = dict(os.environ, SBOM_EXCLUDED_CVES_FILE=str(empty), SOURCE_DATE_EPOCH="1735689600")
        for n in (200, 2000):
            build = make_build(tmpdir / f"b{n}", n)
            t_api, bom = timed(lambda b=build: serialize(generate_from_idf_build(b)))  # type: ignore[misc]
            comps = len(json.loads(bom)["components"])  # type: ignore[arg-type]
            out = tmpdir / f"medfw{n}.json"
            t_cli, res = timed(
                lambda b=build, o=out: run_cli(
                    [medfw_cli, "sbom", "generate", "--idf-build", str(b), "--out", str(o)], env
                )  # type: ignore[misc]
            )
            assert res.returncode == 0, res.stderr  # type: ignore[attr-defined]
            ref_cell, ratio = "not installed", "-"
            if reference:
                ref_out = tmpdir / f"ref{n}.json"
                argv = [
                    reference,
                    "create",
                    "--format",
                    "cyclonedx-json",
                    "--rem-unused",
                    "--no-guess",
                    "-o",
                    str(ref_out),
                ]
                t_ref, rres = timed(lambda a=argv, b=build: run_cli([*a, str(b / "project_description.json")], env))  # type: ignore[misc]
                if rres.returncode == 0:  # type: ignore[attr-defined]
                    ref_comps = len(json.loads(ref_out.read_text()).get("components", []))
                    ref_cell = f"{t_ref:.2f} s ({ref_comps} comps)"
                    ratio = f"{t_ref / t_cli:.2f}x"
                else:
                    ref_cell = "failed: " + rres.stderr.strip().splitlines()[-1][:60]  # type: ignore[attr-defined]
            rows.append(
                (
                    f"ESP-IDF build, {n} components",
                    f"{t_api:.2f} s API / {t_cli:.2f} s CLI ({comps} comps)",
                    ref_cell,
                    ratio,
                    "esp-idf-sbom time / medfw CLI time",
                )
            )
        blob = make_blob(SCAN_SIZE)
        t_scan, findings = timed(lambda: scan_binary(blob, source="fw.bin"))
        found = len(findings)  # type: ignore[arg-type]
        rows.append(
            (
                "binary scan, 16 MiB",
                f"{t_scan:.2f} s ({found} libraries, {SCAN_SIZE / t_scan / 2**20:.0f} MiB/s)",
                "no binary scanner",
                "-",
                "",
            )
        )
    print(f"SBOM benchmark (median of {REPEAT}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    header = ("case", "medfw", "esp-idf-sbom 1.x", "ratio", "note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
