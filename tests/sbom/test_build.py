"""CycloneDX output: golden files, determinism, binary evidence merged into declared components."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import pytest
from cyclonedx.schema import OutputFormat, SchemaVersion
from cyclonedx.validation import make_schemabased_validator

from medfw.sbom import (
    PROP_UNDECLARED,
    PROP_VERSION_MISMATCH,
    generate_from_idf_build,
    load_sbom,
    read_idf_build,
    scan_binary,
    serialize,
)
from medfw.sbom.build import build_bom, merge_findings

from ._elf import elf_with_notes

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "device" / "build"
GOLDEN = REPO / "tests" / "vectors" / "sbom"
SERIAL = uuid.UUID("3e671687-395b-41f5-a30f-a58921a69b79")
TIMESTAMP = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
# Regenerate the golden files with: MEDFW_REGEN_GOLDEN=1 pytest tests/sbom/test_build.py
REGEN = os.environ.get("MEDFW_REGEN_GOLDEN") == "1"


def firmware_blob() -> bytes:
    """A deterministic firmware image embedding real version strings (one older than declared, one undeclared)."""
    parts = [
        b"Mbed TLS 3.6.0",
        b"Server: lwIP/2.2.0 (http://savannah.nongnu.org/projects/lwip)",
        b" inflate 1.3.1 Copyright 1995-2024 Mark Adler ",
        b"expat_2.6.2",
    ]
    out = bytearray(b"\x7fFW\x20" + bytes(60))  # a raw blob (not an ESP image: nothing to bind)
    for p in parts:
        out += bytes(100) + p + b"\x00"
    return bytes(out) + bytes(200)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_golden_example_device(tmp_path: Path, fmt: str) -> None:
    fw = tmp_path / "infusion-pump-fw.bin"
    fw.write_bytes(firmware_blob())
    data = serialize(generate_from_idf_build(EXAMPLE, binaries=[fw], serial=SERIAL, timestamp=TIMESTAMP), fmt)
    golden = GOLDEN / f"example-device.cdx.{fmt}"
    if REGEN:
        golden.write_bytes(data)
    assert data == golden.read_bytes()
    out = OutputFormat.JSON if fmt == "json" else OutputFormat.XML
    assert make_schemabased_validator(out, SchemaVersion.V1_6).validate_str(data.decode()) is None


def test_reruns_are_byte_identical() -> None:
    a = serialize(generate_from_idf_build(EXAMPLE, serial=SERIAL, timestamp=TIMESTAMP))
    b = serialize(generate_from_idf_build(EXAMPLE, serial=SERIAL, timestamp=TIMESTAMP))
    assert a == b


def test_source_date_epoch_fixes_timestamp_and_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1735689600")
    a = serialize(generate_from_idf_build(EXAMPLE))
    b = serialize(generate_from_idf_build(EXAMPLE))
    assert a == b
    doc = json.loads(a)
    assert doc["metadata"]["timestamp"] == "2025-01-01T00:00:00+00:00"
    assert doc["serialNumber"].startswith("urn:uuid:")


def test_without_fixed_identity_serials_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a = json.loads(serialize(generate_from_idf_build(EXAMPLE)))
    b = json.loads(serialize(generate_from_idf_build(EXAMPLE)))
    assert a["serialNumber"] != b["serialNumber"]


def test_metadata_fields() -> None:
    doc = json.loads(serialize(generate_from_idf_build(EXAMPLE, serial=SERIAL, timestamp=TIMESTAMP)))
    meta = doc["metadata"]
    assert doc["specVersion"] == "1.6"
    assert doc["serialNumber"] == f"urn:uuid:{SERIAL}"
    assert meta["component"]["type"] == "firmware"
    assert meta["component"]["name"] == "infusion-pump-fw"
    assert meta["lifecycles"] == [{"phase": "build"}]
    assert meta["tools"]["components"][0]["name"] == "medfw"
    assert meta["supplier"]["name"] == meta["manufacturer"]["name"] == "Example Medical Devices Inc."
    mbedtls = next(c for c in doc["components"] if c["bom-ref"] == "component:mbedtls/mbedtls")
    props = {p["name"]: p["value"] for p in mbedtls["properties"]}
    assert props["medfw:support:level"] == "actively-maintained"
    assert props["cdx:lifecycle:milestone:endOfSupport"] == "2027-03-31"
    assert mbedtls["cpe"] == "cpe:2.3:a:arm:mbed_tls:3.6.1:*:*:*:*:*:*:*"
    assert mbedtls["evidence"]["identity"][0] == {
        "concludedValue": "cpe:2.3:a:mbed-tls:mbedtls:3.6.1:*:*:*:*:*:*:*",
        "confidence": 1,
        "field": "cpe",
        "methods": [
            {
                "confidence": 1,
                "technique": "manifest-analysis",
                "value": "${IDF_PATH}/components/mbedtls/mbedtls/sbom.yml",
            }
        ],
    }
    assert mbedtls["licenses"] == [{"expression": "Apache-2.0 OR GPL-2.0-or-later"}]
    refs = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert "framework:esp-idf" in refs["firmware:infusion-pump-fw"]


def test_binary_evidence_flags_mismatch_and_undeclared() -> None:
    project = read_idf_build(EXAMPLE)
    merged = merge_findings(project, scan_binary(firmware_blob(), source="fw.bin"))
    comps = {c.ref: c for c in merged.components}
    mbedtls = comps["component:mbedtls/mbedtls"]
    assert dict(mbedtls.properties)[PROP_VERSION_MISMATCH].startswith("declared 3.6.1, found 3.6.0 in fw.bin")
    lwip = comps["component:lwip/lwip"]  # the lwIP sub-package (CPE product lwip), not the IDF wrapper component
    assert [f.version for f in lwip.findings] == ["2.2.0"]
    assert PROP_VERSION_MISMATCH not in dict(lwip.properties)
    assert [f.version for f in comps["component:espressif__zlib/zlib"].findings] == ["1.3.1"]
    expat = comps["binary:expat"]
    assert (expat.version, dict(expat.properties)[PROP_UNDECLARED]) == ("2.6.2", "true")
    assert expat.cpes == ("cpe:2.3:a:libexpat_project:libexpat:2.6.2:*:*:*:*:*:*:*",)
    assert "binary:expat" in merged.depends_on

    doc = load_sbom(serialize(build_bom(merged, serial=SERIAL, timestamp=TIMESTAMP)))
    raw = next(c for c in doc.raw["components"] if c["bom-ref"] == "component:mbedtls/mbedtls")
    version_evidence = [i for i in raw["evidence"]["identity"] if i["field"] == "version"]
    assert version_evidence[0]["concludedValue"] == "3.6.0"
    assert version_evidence[0]["methods"][0]["technique"] == "binary-analysis"
    assert raw["evidence"]["occurrences"][0]["location"] == "fw.bin"


def test_elf_package_note_is_evidence_for_the_declared_component() -> None:
    note = json.dumps({"type": "firmware", "name": "zlib", "version": "1.3.0", "license": "Zlib"}).encode()
    elf = elf_with_notes([(b"FDO", 0xCAFE1A7E, note)])
    merged = merge_findings(read_idf_build(EXAMPLE), scan_binary(elf, source="app.elf"))
    zlib = next(c for c in merged.components if c.ref == "component:espressif__zlib/zlib")
    assert dict(zlib.properties)[PROP_VERSION_MISMATCH].startswith("declared 1.3.1, found 1.3.0 in app.elf")
    doc = json.loads(serialize(build_bom(merged, serial=SERIAL, timestamp=TIMESTAMP)))
    raw = next(c for c in doc["components"] if c["bom-ref"] == "component:espressif__zlib/zlib")
    (ident,) = [i for i in raw["evidence"]["identity"] if i["field"] == "version"]
    assert ident["concludedValue"] == "1.3.0"
    assert ident["confidence"] == 1
    assert ident["methods"][0]["technique"] == "manifest-analysis"
