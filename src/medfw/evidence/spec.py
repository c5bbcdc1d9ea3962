"""The release description an evidence bundle is built from (``release.yml`` in a release directory).

Example::

    name: infusion-pump-fw
    version: 1.1.0
    model: medfw-example
    chip: esp32c3
    images:
      - {path: images/app-1.1.0.bin, role: app, format: sbv2}
      - {path: images/bootloader.bin, role: bootloader, format: sbv2}
    previous_image: images/app-1.0.0.bin     # optional: the release this one replaces (downgrade test)
    trusted_keys: [keys/release.pub.pem]     # public keys whose digests are burned into eFuse
    revoked_slots: []                        # eFuse key slots revoked on the fleet
    efuse_summary: efuse/summary.json        # optional: `espefuse summary --format json` of a production unit
    efuse_policy: null                       # optional: policy file (default: medfw's shipped policy)
    build_config: sdkconfig                  # optional: the build's sdkconfig / sdkconfig.json (medfw build check)
    build_policy: null                       # optional: build-config policy file (default: medfw's shipped policy)
    sbom: sbom.cdx.json
    vuln_db: vuln.db                         # vulnerability index (scan + decisions come from it)
    audit_log: audit.db                      # audit log to export (file or postgresql:// URL)
    audit_key: audit.key                     # optional: its verification key (checks HMACs at build time;
                                             #   never copied into the bundle)
    evidence_key: keys/evidence.pem          # key (or pkcs11: URI) that signs the bundle manifest
    device_trails: trails/                   # optional: canary units' trails (`medfw ota device trails`)
    device_ca: keys/device-ca.crt            # optional: the device CA their certificates must chain to

Relative paths are relative to the release directory.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medfw._io import read_bytes
from medfw.chips import DEFAULT_CHIP
from medfw.errors import EvidenceError

__all__ = ["ImageRole", "ImageSpec", "ReleaseSpec", "SignedFormat", "load_release_spec"]

_KNOWN = {
    "name",
    "version",
    "model",
    "chip",
    "images",
    "previous_image",
    "trusted_keys",
    "revoked_slots",
    "efuse_summary",
    "efuse_policy",
    "build_config",
    "build_policy",
    "sbom",
    "vuln_db",
    "audit_log",
    "audit_key",
    "evidence_key",
    "device_trails",
    "device_ca",
}


class ImageRole(enum.StrEnum):
    """What an image of the release is."""

    APP = "app"
    BOOTLOADER = "bootloader"


class SignedFormat(enum.StrEnum):
    """How an image of the release is signed."""

    SBV2 = "sbv2"  # ESP image with a Secure Boot v2 signature sector
    MCUBOOT = "mcuboot"


@dataclass(frozen=True)
class ImageSpec:
    """A signed image of the release.

    Raises:
        ValueError: ``role`` or ``format`` is not one of :class:`ImageRole` / :class:`SignedFormat`.
    """

    path: Path
    role: ImageRole = ImageRole.APP
    format: SignedFormat = SignedFormat.SBV2

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", ImageRole(self.role))
        object.__setattr__(self, "format", SignedFormat(self.format))


@dataclass(frozen=True)
class ReleaseSpec:
    """A parsed ``release.yml`` with paths resolved against the release directory."""

    root: Path
    name: str
    version: str
    model: str
    chip: str
    images: tuple[ImageSpec, ...]
    trusted_keys: tuple[Path, ...]
    sbom: Path
    previous_image: Path | None = None
    revoked_slots: tuple[int, ...] = ()
    efuse_summary: Path | None = None
    efuse_policy: Path | None = None
    build_config: Path | None = None
    build_policy: Path | None = None
    vuln_db: str = ""
    audit_log: str = ""
    audit_key: Path | None = None
    evidence_key: str | None = None
    device_trails: Path | None = None
    device_ca: Path | None = None

    def describe(self) -> dict[str, Any]:
        """The release identity recorded in the bundle manifest."""
        return {"name": self.name, "version": self.version, "model": self.model, "chip": self.chip}


def _str(doc: dict[str, Any], key: str, path: str, *, required: bool = True) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise EvidenceError("required key is missing", path=path, field=key)
        return None
    if not isinstance(value, str | int | float):
        raise EvidenceError("must be a string", path=path, field=key)
    return str(value)


def load_release_spec(release_dir: str | Path) -> ReleaseSpec:
    """Load ``release.yml`` from ``release_dir``.

    Raises:
        EvidenceError: the file is missing or malformed (naming the key).
    """
    root = Path(release_dir)
    spec_path = root / "release.yml"
    where = str(spec_path)
    try:
        doc = yaml.safe_load(read_bytes(spec_path, max_length=1 << 20, what="release description"))
    except yaml.YAMLError as e:
        raise EvidenceError(f"invalid YAML: {e}", path=where) from e
    if not isinstance(doc, dict):
        raise EvidenceError("release description must be a mapping", path=where)
    unknown = sorted(set(doc) - _KNOWN)
    if unknown:
        raise EvidenceError(f"unknown key {unknown[0]!r}", path=where, field=unknown[0])

    def rel(value: str | None) -> Path | None:
        return None if value is None else root / value

    images_raw = doc.get("images")
    if not isinstance(images_raw, list) or not images_raw:
        raise EvidenceError("at least one image is required", path=where, field="images")
    images: list[ImageSpec] = []
    for i, item in enumerate(images_raw):
        if not isinstance(item, dict) or "path" not in item:
            raise EvidenceError("each image needs a path", path=where, field=f"images[{i}]")
        fmt, role = str(item.get("format", SignedFormat.SBV2)), str(item.get("role", ImageRole.APP))
        if fmt not in set(SignedFormat):
            raise EvidenceError(f"unknown image format {fmt!r}", path=where, field=f"images[{i}].format")
        if role not in set(ImageRole):
            raise EvidenceError(f"unknown image role {role!r}", path=where, field=f"images[{i}].role")
        images.append(ImageSpec(root / str(item["path"]), ImageRole(role), SignedFormat(fmt)))
    keys_raw = doc.get("trusted_keys")
    if not isinstance(keys_raw, list) or not keys_raw:
        raise EvidenceError("at least one trusted public key is required", path=where, field="trusted_keys")
    revoked = doc.get("revoked_slots") or []
    if not isinstance(revoked, list) or not all(isinstance(x, int) for x in revoked):
        raise EvidenceError("must be a list of slot numbers", path=where, field="revoked_slots")
    sbom = _str(doc, "sbom", where)
    assert sbom is not None
    vuln_db = _str(doc, "vuln_db", where)
    audit_log = _str(doc, "audit_log", where)

    def url_or_path(value: str | None) -> str:
        assert value is not None
        if "://" in value:
            return value
        return str(root / value)

    evidence_key = _str(doc, "evidence_key", where, required=False)
    if evidence_key is not None and not evidence_key.startswith("pkcs11:"):
        evidence_key = str(root / evidence_key)
    return ReleaseSpec(
        root=root,
        name=str(_str(doc, "name", where)),
        version=str(_str(doc, "version", where)),
        model=str(_str(doc, "model", where)),
        chip=str(_str(doc, "chip", where, required=False) or DEFAULT_CHIP),
        images=tuple(images),
        trusted_keys=tuple(root / str(k) for k in keys_raw),
        sbom=root / sbom,
        previous_image=rel(_str(doc, "previous_image", where, required=False)),
        revoked_slots=tuple(revoked),
        efuse_summary=rel(_str(doc, "efuse_summary", where, required=False)),
        efuse_policy=rel(_str(doc, "efuse_policy", where, required=False)),
        build_config=rel(_str(doc, "build_config", where, required=False)),
        build_policy=rel(_str(doc, "build_policy", where, required=False)),
        vuln_db=url_or_path(vuln_db),
        audit_log=url_or_path(audit_log),
        audit_key=rel(_str(doc, "audit_key", where, required=False)),
        evidence_key=evidence_key,
        device_trails=rel(_str(doc, "device_trails", where, required=False)),
        device_ca=rel(_str(doc, "device_ca", where, required=False)),
    )
