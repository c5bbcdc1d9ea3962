"""release.yml: required keys, relative paths, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.errors import EvidenceError, InputError
from medfw.evidence.spec import ImageRole, ImageSpec, SignedFormat, load_release_spec

GOOD = """\
name: fw
version: 1.0.0
model: m
images: [{path: a.bin}]
trusted_keys: [k.pem]
sbom: s.json
vuln_db: postgresql://db/vuln
audit_log: audit.db
evidence_key: "pkcs11:token=t;object=evidence"
"""


def test_good_spec_resolves_paths(tmp_path: Path) -> None:
    (tmp_path / "release.yml").write_text(GOOD)
    spec = load_release_spec(tmp_path)
    assert spec.images[0].path == tmp_path / "a.bin" and spec.images[0].format is SignedFormat.SBV2
    assert spec.images[0].role is ImageRole.APP
    assert spec.chip == "esp32c3"
    assert spec.vuln_db == "postgresql://db/vuln"
    assert spec.audit_log == str(tmp_path / "audit.db")
    assert spec.evidence_key == "pkcs11:token=t;object=evidence"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD.replace("name: fw\n", ""), "name"),
        (GOOD.replace("sbom: s.json\n", ""), "sbom"),
        (GOOD.replace("vuln_db: postgresql://db/vuln\n", ""), "vuln_db"),
        (GOOD.replace("images: [{path: a.bin}]", "images: []"), "images"),
        (GOOD.replace("images: [{path: a.bin}]", "images: [{path: a.bin, format: uf2}]"), "images[0].format"),
        (GOOD.replace("images: [{path: a.bin}]", "images: [{path: a.bin, role: firmware}]"), "images[0].role"),
        (GOOD.replace("trusted_keys: [k.pem]", "trusted_keys: k.pem"), "trusted_keys"),
        (GOOD + "revoked_slots: [one]\n", "revoked_slots"),
        (GOOD + "colour: blue\n", "colour"),
    ],
)
def test_bad_spec_names_the_key(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "release.yml").write_text(text)
    with pytest.raises(EvidenceError) as info:
        load_release_spec(tmp_path)
    assert info.value.field == field
    assert info.value.path == str(tmp_path / "release.yml")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_release_spec(tmp_path)
    (tmp_path / "release.yml").write_text("a: [")
    with pytest.raises(EvidenceError, match="invalid YAML"):
        load_release_spec(tmp_path)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["path", "role", "format"]), inner),
    max_leaves=6,
)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["name", "version", "model", "images", "trusted_keys", "sbom", "vuln_db", "audit_log", "revoked_slots"]
        ),
        _VALUES,
    )
)
def test_random_release_descriptions_fail_only_with_named_errors(doc: dict) -> None:
    import tempfile

    import yaml

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "release.yml").write_text(yaml.safe_dump(doc))
        error: EvidenceError | None = None
        try:
            spec = load_release_spec(d)
        except EvidenceError as e:
            error = e
        if error is not None:
            assert error.path is not None and error.path.endswith("release.yml")
        else:
            assert spec.images and spec.trusted_keys and spec.sbom


def test_an_image_spec_refuses_an_unknown_role_or_format(tmp_path: Path) -> None:
    assert ImageSpec(tmp_path, "bootloader", "mcuboot").role is ImageRole.BOOTLOADER  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ImageRole"):
        ImageSpec(tmp_path, "firmware")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="SignedFormat"):
        ImageSpec(tmp_path, ImageRole.APP, "uf2")  # type: ignore[arg-type]
