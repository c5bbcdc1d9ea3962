"""Bind an SBOM to the firmware image it describes, and check that binding later.

``medfw sbom generate --binary IMAGE`` reads the image's own identity — for an ESP-IDF app the image header
(chip) and ``esp_app_desc_t`` (project name, version, IDF version, ``secure_version``); for an MCUboot image
the header version and the security counter — compares it with the build metadata (a mismatch is an error
unless explicitly allowed with a reason) and records it in ``metadata.component``:

* ``hashes``: SHA-256 of the image *content as built*, unsigned (see :func:`content_sha256`);
* properties ``medfw:image:sha256``, ``medfw:image:sha256-scope``, ``medfw:image:file``,
  ``medfw:image:format``, ``medfw:image:project-name``, ``medfw:image:version``, ``medfw:image:chip``,
  ``medfw:image:idf-version``, ``medfw:image:secure-version`` and, when a mismatch was allowed,
  ``medfw:image:mismatch-allowed`` (the reason and the differences).

The content hash excludes everything signing adds, so an unsigned image and the same image signed match:

* ESP image: the image proper (header, segments, checksum, appended SHA-256) — without the 0xFF padding
  and the Secure Boot v2 signature sector;
* MCUboot image: the body (``ih_img_size`` bytes after the ``ih_hdr_size`` header) — without the header and
  the protected and unprotected TLV areas (security counter, hash, signatures), so it equals the SHA-256 of
  the build's raw binary (``zephyr.bin`` signed with ``--pad-header``).

Any other file (a raw binary) is compared by the SHA-256 of the whole file.

:func:`verify_binding` is what ``ota release publish --sbom``, ``evidence build`` and
``vuln release add --image`` run: it refuses an image whose content hash is not the SBOM's, naming both.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from medfw._io import read_bytes
from medfw.errors import IntegrityError, MalformedImageError, ManifestError, VerificationError
from medfw.sbom.model import ProjectSpec

__all__ = [
    "PROP_IMAGE_SHA256",
    "BindingMismatch",
    "ImageFormat",
    "ImageIdentity",
    "bind_project",
    "content_sha256",
    "identify_files",
    "identify_image",
    "mismatches",
    "recorded_image_sha256",
    "verify_binding",
]

PROP_IMAGE_SHA256 = "medfw:image:sha256"
PROP_SCOPE = "medfw:image:sha256-scope"
PROP_ALLOWED = "medfw:image:mismatch-allowed"

_ESP_MAGIC = 0xE9
_MCUBOOT_MAGIC = 0x96F3B83D
_SBV2_SECTOR = 4096
_MCUBOOT_SIG_TLVS = frozenset({0x20, 0x21, 0x22, 0x23, 0x24, 0x25})


class ImageFormat(enum.StrEnum):
    """Firmware image formats whose identity medfw reads."""

    ESP_APP = "esp-app"
    MCUBOOT = "mcuboot"

    @property
    def scope(self) -> str:
        """What the content hash covers for this format."""
        if self is ImageFormat.ESP_APP:
            return "ESP image without Secure Boot v2 padding and signature sector"
        return "MCUboot image body, without the header and the TLV areas"


@dataclass(frozen=True)
class ImageIdentity:
    """What a firmware image says about itself, and the SHA-256 of its unsigned content."""

    file: str
    format: ImageFormat
    sha256: str
    content_length: int
    signed: bool
    project_name: str | None = None
    version: str | None = None
    chip: str | None = None
    idf_version: str | None = None
    secure_version: int | None = None

    def properties(self) -> list[tuple[str, str]]:
        """The ``metadata.component`` properties that record this identity."""
        props = [
            (PROP_IMAGE_SHA256, self.sha256),
            (PROP_SCOPE, self.format.scope),
            ("medfw:image:file", self.file),
            ("medfw:image:format", self.format.value),
        ]
        optional = {
            "medfw:image:project-name": self.project_name,
            "medfw:image:version": self.version,
            "medfw:image:chip": self.chip,
            "medfw:image:idf-version": self.idf_version,
            "medfw:image:secure-version": None if self.secure_version is None else str(self.secure_version),
        }
        props.extend((k, v) for k, v in optional.items() if v)
        return props


@dataclass(frozen=True)
class BindingMismatch:
    """One field where the image and the build metadata disagree."""

    field: str
    build: str
    image: str

    def __str__(self) -> str:
        return f"{self.field}: build says {self.build!r}, image says {self.image!r}"


def _esp_identity(data: bytes, file: str) -> ImageIdentity:
    from medfw.image.esp import EspImage  # noqa: PLC0415 - image parsing only when needed

    img = EspImage.from_bytes(data, path=file)
    signed = img.trailing_length >= _SBV2_SECTOR
    if signed:
        from medfw.image.sbv2 import parse_signed_image  # noqa: PLC0415

        try:
            parse_signed_image(data, path=file)
        except MalformedImageError:
            signed = False
    desc = img.app_desc
    return ImageIdentity(
        file=Path(file).name,
        format=ImageFormat.ESP_APP,
        sha256=hashlib.sha256(memoryview(data)[: img.image_length]).hexdigest(),
        content_length=img.image_length,
        signed=signed,
        project_name=desc.project_name if desc else None,
        version=desc.version if desc else None,
        chip=img.chip,
        idf_version=desc.idf_ver if desc else None,
        secure_version=desc.secure_version if desc else None,
    )


def _mcuboot_identity(data: bytes, file: str) -> ImageIdentity:
    from medfw.image.mcuboot_format import parse_image  # noqa: PLC0415

    try:
        img = parse_image(data)
    except (MalformedImageError, IntegrityError) as e:
        e.path = file
        raise
    start = img.header.hdr_size
    end = start + img.header.img_size
    return ImageIdentity(
        file=Path(file).name,
        format=ImageFormat.MCUBOOT,
        sha256=hashlib.sha256(memoryview(data)[start:end]).hexdigest(),
        content_length=end - start,
        signed=any(t.type in _MCUBOOT_SIG_TLVS for t in img.tlvs),
        version=str(img.version),
        secure_version=img.security_counter,
    )


def identify_image(data: bytes, *, path: str) -> ImageIdentity | None:
    """The identity of an ESP app or MCUboot image; ``None`` for anything else (an ELF, a raw blob).

    Raises:
        MalformedImageError: the data starts like an ESP or MCUboot image but is not one.
        IntegrityError: an MCUboot image whose integrity data (TLV area) is damaged.
    """
    if len(data) >= 4 and struct.unpack_from("<I", data)[0] == _MCUBOOT_MAGIC:
        return _mcuboot_identity(data, path)
    if data[:1] == bytes([_ESP_MAGIC]):
        return _esp_identity(data, path)
    return None


def identify_files(paths: Sequence[str | os.PathLike[str]], *, max_length: int) -> list[ImageIdentity]:
    """The identities of the firmware images among ``paths`` (ELF files and other blobs are skipped)."""
    out = []
    for p in paths:
        ident = identify_image(read_bytes(p, max_length=max_length, what="firmware binary"), path=str(p))
        if ident is not None:
            out.append(ident)
    return out


def content_sha256(data: bytes, *, path: str) -> str:
    """SHA-256 of the unsigned content of an image (the whole file when it is neither ESP nor MCUboot)."""
    ident = identify_image(data, path=path)
    return ident.sha256 if ident is not None else hashlib.sha256(data).hexdigest()


def _norm_version(v: str) -> str:
    v = v.strip()
    v = v[1:] if v[:1] in ("v", "V") and v[1:2].isdigit() else v
    return v.removesuffix("+0").removesuffix("-dirty")


def _same_version(a: str, b: str) -> bool:
    x, y = _norm_version(a), _norm_version(b)
    return y in (x, f"{x}.0") or x == f"{y}.0"


def mismatches(project: ProjectSpec, image: ImageIdentity) -> list[BindingMismatch]:
    """Fields (version, chip, IDF version) where the build metadata and the image disagree."""
    props = dict(project.properties)
    pairs = [
        ("version", project.version, image.version, _same_version),
        ("chip", props.get("medfw:idf:target"), image.chip, lambda a, b: a == b),
        ("IDF version", props.get("medfw:idf:version"), image.idf_version, _same_version),
    ]
    return [
        BindingMismatch(name, build, img) for name, build, img, same in pairs if build and img and not same(build, img)
    ]


def bind_project(
    project: ProjectSpec, images: Sequence[ImageIdentity], *, allow_mismatch: str | None = None, source: str = ""
) -> ProjectSpec:
    """Record ``images[0]`` (the firmware image) in the project's ``metadata.component``.

    Raises:
        ManifestError: more than one firmware image, or the image disagrees with the build metadata and no
            ``allow_mismatch`` reason was given (the message names both values of each field).
    """
    if not images:
        return project
    if len(images) > 1:
        names = ", ".join(i.file for i in images)
        raise ManifestError(f"more than one firmware image to bind the SBOM to ({names}); give one", field="--binary")
    image = images[0]
    diffs = mismatches(project, image)
    props = [p for p in project.properties if not p[0].startswith("medfw:image:")]
    props.extend(image.properties())
    if diffs:
        if not allow_mismatch:
            raise ManifestError(
                f"image {image.file} does not match the build metadata: "
                + "; ".join(str(d) for d in diffs)
                + " (rebuild, or record why with --allow-mismatch REASON)",
                path=source or image.file,
                field=diffs[0].field,
            )
        props.append((PROP_ALLOWED, f"{allow_mismatch} [{'; '.join(str(d) for d in diffs)}]"))
    hashes = [h for h in project.hashes if h[0] != "SHA-256"]
    hashes.append(("SHA-256", image.sha256))
    return replace(project, hashes=tuple(sorted(set(hashes))), properties=tuple(sorted(set(props))))


def recorded_image_sha256(properties: Sequence[tuple[str, str]], *, sbom_path: str) -> str:
    """The image content hash an SBOM's ``metadata.component`` records.

    Raises:
        ManifestError: the SBOM records no firmware image hash (it was generated without ``--binary``).
    """
    for name, value in properties:
        if name == PROP_IMAGE_SHA256:
            v = value.strip().lower()
            if len(v) == 64 and all(c in "0123456789abcdef" for c in v):
                return v
            raise ManifestError(f"{PROP_IMAGE_SHA256} is not a SHA-256: {value!r}", path=sbom_path, field=name)
    raise ManifestError(
        "the SBOM records no firmware image hash (generate it with `medfw sbom generate --binary IMAGE`)",
        path=sbom_path,
        field=f"metadata.component.properties[{PROP_IMAGE_SHA256}]",
    )


def verify_binding(
    properties: Sequence[tuple[str, str]], image: bytes, *, sbom_path: str, image_path: str
) -> ImageIdentity | None:
    """Check that ``image`` is the firmware the SBOM describes; return the image's identity.

    Raises:
        ManifestError: the SBOM has no image hash.
        VerificationError: the image's unsigned content hashes to something else (both hashes named).
    """
    recorded = recorded_image_sha256(properties, sbom_path=sbom_path)
    ident = identify_image(image, path=image_path)
    actual = ident.sha256 if ident is not None else hashlib.sha256(image).hexdigest()
    if not hmac.compare_digest(actual, recorded):
        raise VerificationError(
            f"SBOM {Path(sbom_path).name} describes firmware with SHA-256 {recorded}, "
            f"but the unsigned content of {Path(image_path).name} hashes to {actual}",
            path=image_path,
            field=PROP_IMAGE_SHA256,
        )
    return ident
