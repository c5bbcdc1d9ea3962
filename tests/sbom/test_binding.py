"""SBOM ↔ image binding: `sbom generate --binary`, then `ota release publish --sbom`, `vuln release add --image`
(and `evidence build`, in tests/evidence/test_build.py) refuse an image the SBOM does not describe."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.cli import main
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.errors import IntegrityError, MalformedImageError, ManifestError, VerificationError
from medfw.image.esp import build_app_image
from medfw.image.mcuboot_sign import sign_image as mcuboot_sign
from medfw.image.sbv2 import sign_image
from medfw.sbom.binding import content_sha256, identify_image, recorded_image_sha256, verify_binding
from medfw.sbom.document import load_sbom

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_BUILD = REPO / "examples" / "device" / "build"

MANIFEST = """\
name: infusion-pump-fw
version: {version}
supplier: 'Organization: Example Medical Devices Inc.'
license: LicenseRef-Proprietary
components:
  - name: zlib
    version: 1.3.1
    purl: pkg:generic/zlib@{{}}
    license: Zlib
"""


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> FileSigner:
    return FileSigner(generate_private_key(KeyType.ECDSA_P256), "release.pem")


def _project(tmp_path: Path, version: str) -> Path:
    p = tmp_path / f"medfw-sbom-{version}.yml"
    p.write_text(MANIFEST.format(version=version))
    return p


def _app(tmp_path: Path, version: str, *, chip: str = "esp32c6", svn: int = 1) -> Path:
    p = tmp_path / f"app-{version}-{chip}.bin"
    p.write_bytes(build_app_image(chip=chip, version=version, secure_version=svn, project_name="infusion-pump-fw"))
    return p


def _generate(tmp_path: Path, version: str, image: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / f"sbom-{version}-{image.stem}.cdx.json"
    project = str(_project(tmp_path, version))
    code = main(["sbom", "generate", "--manifest", project, "--binary", str(image), "--out", str(out), *extra])
    return code, out


def test_generate_records_image_identity_and_unsigned_hash(tmp_path: Path, signer: FileSigner) -> None:
    image = _app(tmp_path, "1.1.0", svn=2)
    code, out = _generate(tmp_path, "1.1.0", image)
    assert code == 0
    doc = load_sbom(out)
    assert doc.component is not None
    props = dict(doc.component.properties)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()  # the unsigned image as built
    assert props["medfw:image:sha256"] == digest
    assert ("SHA-256", digest) in doc.component.hashes
    assert (props["medfw:image:version"], props["medfw:image:chip"]) == ("1.1.0", "esp32c6")
    assert (props["medfw:image:secure-version"], props["medfw:image:idf-version"]) == ("2", "v5.4")
    assert props["medfw:image:format"] == "esp-app"
    # the signed image matches: its content without padding and signature sector is the unsigned image
    signed = sign_image(image.read_bytes(), [signer])
    assert len(signed) > image.stat().st_size
    ident = verify_binding(doc.component.properties, signed, sbom_path=str(out), image_path="app.signed.bin")
    assert ident is not None and ident.signed


def test_generate_refuses_an_image_of_another_version_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _app(tmp_path, "1.0.0")
    code, out = _generate(tmp_path, "1.1.0", image)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "'1.1.0'" in err and "'1.0.0'" in err and "version" in err
    # with a recorded reason it is accepted, and the reason and the difference are in the SBOM
    code, out = _generate(tmp_path, "1.1.0", image, "--allow-mismatch", "engineering build for bench tests")
    assert code == 0
    doc = load_sbom(out)
    assert doc.component is not None
    (allowed,) = doc.component.property("medfw:image:mismatch-allowed")
    assert "engineering build for bench tests" in allowed and "'1.0.0'" in allowed
    # an empty reason is a usage error
    assert _generate(tmp_path, "1.1.0", image, "--allow-mismatch", " ")[0] == 2


def test_idf_build_against_an_image_of_another_chip_version_and_idf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the example build says infusion-pump-fw 1.0.0 for esp32c3 with IDF v5.4
    image = tmp_path / "app-other.bin"
    image.write_bytes(
        build_app_image(chip="esp32s3", version="2.4.0", secure_version=1, project_name="x", idf_ver="v5.3.1")
    )
    out = tmp_path / "sbom.cdx.json"
    code = main(["sbom", "generate", "--idf-build", str(EXAMPLE_BUILD), "--binary", str(image), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    for value in ("'2.4.0'", "'1.0.0'", "'esp32s3'", "'esp32c3'", "'v5.3.1'", "'v5.4'"):
        assert value in err
    matching = tmp_path / "app-ok.bin"
    matching.write_bytes(build_app_image(chip="esp32c3", version="1.0.0", secure_version=1, idf_ver="v5.4"))
    code = main(["sbom", "generate", "--idf-build", str(EXAMPLE_BUILD), "--binary", str(matching), "--out", str(out)])
    assert code == 0
    assert load_sbom(out).component.property("medfw:image:chip") == ["esp32c3"]  # type: ignore[union-attr]


def test_mcuboot_body_is_bound(tmp_path: Path) -> None:
    body = bytes(range(256)) * 16
    key = FileSigner(generate_private_key(KeyType.ED25519), "k.pem")
    signed = mcuboot_sign(body, key, version="1.2.0", header_size=0x200, pad_header=True)
    ident = identify_image(signed, path="signed.bin")
    assert ident is not None and ident.signed and ident.version == "1.2.0+0"
    assert ident.sha256 == hashlib.sha256(body).hexdigest() == content_sha256(body, path="zephyr.bin")


def test_verify_binding_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no firmware image hash"):
        recorded_image_sha256([("other", "x")], sbom_path="s.json")
    with pytest.raises(ManifestError, match="not a SHA-256"):
        recorded_image_sha256([("medfw:image:sha256", "zz")], sbom_path="s.json")
    a = build_app_image(version="1.0.0", secure_version=1)
    b = build_app_image(version="1.1.0", secure_version=2)
    props = [("medfw:image:sha256", content_sha256(a, path="a"))]
    with pytest.raises(VerificationError) as e:
        verify_binding(props, b, sbom_path="s.json", image_path="b.bin")
    assert content_sha256(a, path="a") in e.value.message and content_sha256(b, path="b") in e.value.message


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_identify_never_crashes_on_hostile_bytes(data: bytes) -> None:
    for head in (b"", b"\xe9", b"\x3d\xb8\xf3\x96"):
        try:
            ident = identify_image(head + data, path="x.bin")
        except (MalformedImageError, IntegrityError):
            continue  # not the format at all (exit 2), or a damaged image of it (exit 1)
        assert ident is None or len(ident.sha256) == 64


def _ota_keys(tmp_path: Path) -> dict[str, str]:
    keys = {}
    for role in ("root", "targets"):
        p = tmp_path / f"{role}.pem"
        assert main(["keys", "generate", "--type", "ed25519", "--out", str(p)]) == 0
        keys[role] = str(p)
    return keys


def test_publish_and_release_add_verify_the_binding(
    tmp_path: Path, signer: FileSigner, capsys: pytest.CaptureFixture[str]
) -> None:
    new, old = _app(tmp_path, "1.1.0", svn=2), _app(tmp_path, "1.0.0", svn=1)
    signed_new, signed_old = tmp_path / "new.signed.bin", tmp_path / "old.signed.bin"
    signed_new.write_bytes(sign_image(new.read_bytes(), [signer]))
    signed_old.write_bytes(sign_image(old.read_bytes(), [signer]))
    assert _generate(tmp_path, "1.1.0", new)[0] == 0
    sbom = tmp_path / f"sbom-1.1.0-{new.stem}.cdx.json"
    keys = _ota_keys(tmp_path)
    repo = tmp_path / "repo"
    assert (
        main(["ota", "repo", "init", "--repo", str(repo), "--root-key", keys["root"], "--targets-key", keys["targets"]])
        == 0
    )
    capsys.readouterr()

    def publish(image: Path, sbom_file: Path) -> int:
        argv = ["ota", "release", "publish", "--repo", str(repo), "--image", str(image), "--model", "pump"]
        return main([*argv, "--targets-key", keys["targets"], "--sbom", str(sbom_file)])

    digest_new = hashlib.sha256(new.read_bytes()).hexdigest()
    digest_old = hashlib.sha256(old.read_bytes()).hexdigest()
    assert publish(signed_old, sbom) == 1
    err = capsys.readouterr().err
    assert digest_new in err and digest_old in err
    targets = (
        json.loads((repo / "metadata" / "targets.json").read_text())
        if (repo / "metadata" / "targets.json").exists()
        else {}
    )
    assert "pump/pump-1.0.0.bin" not in json.dumps(targets)
    unbound = tmp_path / "unbound.cdx.json"
    assert main(["sbom", "generate", "--manifest", str(_project(tmp_path, "1.1.0")), "--out", str(unbound)]) == 0
    capsys.readouterr()
    assert publish(signed_new, unbound) == 2
    assert "no firmware image hash" in capsys.readouterr().err
    assert publish(signed_new, sbom) == 0

    db = str(tmp_path / "vuln.db")
    assert main(["vuln", "release", "add", str(sbom), "--image", str(signed_old), "--db", db]) == 1
    err = capsys.readouterr().err
    assert digest_new in err and digest_old in err
    assert main(["vuln", "release", "add", str(sbom), "--image", str(signed_new), "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["created"] is True
    shutil.rmtree(repo)
