"""sbom diff between two releases of the example device."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path

from medfw.sbom import diff_sboms, generate_from_idf_build, load_sbom, serialize

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "device"
TS = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _release(tmp: Path, name: str, edit: bool) -> bytes:
    root = tmp / name
    shutil.copytree(EXAMPLE, root)
    if edit:
        mbedtls = root / "esp-idf/components/mbedtls/mbedtls/sbom.yml"
        mbedtls.write_text(mbedtls.read_text().replace("version: 3.6.1", "version: 3.6.3"))
        lock = root / "dependencies.lock"
        # drop the zlib managed component from the link
        mapfile = root / "build/infusion-pump-fw.map"
        mapfile.write_text(
            mapfile.read_text().replace("esp-idf/espressif__zlib/libespressif__zlib.a(inflate.c.obj)\n", "")
        )
        assert lock.exists()
        # link fatfs
        mapfile.write_text(
            mapfile.read_text()
            .replace("Discarded input sections", "Discarded input sections")
            .replace(
                "esp-idf/main/libmain.a(main.c.obj)\n",
                "esp-idf/main/libmain.a(main.c.obj)\n                              x (y)\nesp-idf/fatfs/libfatfs.a(ff.c.obj)\n",
            )
        )
    return serialize(generate_from_idf_build(root / "build", serial=uuid.uuid5(uuid.NAMESPACE_URL, name), timestamp=TS))


def test_diff_two_releases(tmp_path: Path) -> None:
    old = load_sbom(_release(tmp_path, "r1", edit=False))
    new = load_sbom(_release(tmp_path, "r2", edit=True))
    d = diff_sboms(old, new)
    assert [c.bom_ref for c in d.added] == ["component:fatfs"]
    assert [c.bom_ref for c in d.removed] == ["component:espressif__zlib", "component:espressif__zlib/zlib"]
    changed = {ch.new.bom_ref: ch.changes for ch in d.changed}
    assert set(changed) == {"component:mbedtls/mbedtls"}
    assert changed["component:mbedtls/mbedtls"]["version"] == ("3.6.1", "3.6.3")
    assert set(changed["component:mbedtls/mbedtls"]) == {"version", "purl", "cpes"}
    out = d.to_dict()
    assert out["changed"][0]["old_version"] == "3.6.1"


def test_identical_sboms_have_no_diff(tmp_path: Path) -> None:
    data = _release(tmp_path, "r1", edit=False)
    assert diff_sboms(load_sbom(data), load_sbom(data)).empty


def test_pairs_by_purl_when_refs_differ() -> None:
    def doc(ref: str, version: str) -> bytes:
        return (
            '{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"zlib",'
            f'"bom-ref":"{ref}","version":"{version}","purl":"pkg:generic/zlib@{version}"}}]}}'
        ).encode()

    d = diff_sboms(load_sbom(doc("zlib@1.3", "1.3")), load_sbom(doc("zlib@1.3.1", "1.3.1")))
    assert not d.added
    assert not d.removed
    assert d.changed[0].changes["version"] == ("1.3", "1.3.1")
