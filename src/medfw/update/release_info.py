"""What a release is in the TUF targets metadata, and how long each role's metadata stays valid."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tuf.api.metadata import TargetFile

from medfw.errors import InputError

__all__ = ["ExpiryPolicy", "ReleaseInfo", "release_from_target"]


@dataclass(frozen=True)
class ExpiryPolicy:
    """How long each role's metadata stays valid after it is signed."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=90)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)

    def of(self, role: str) -> timedelta:
        """Return the validity period of ``role``."""
        value: timedelta = getattr(self, role)
        return value


@dataclass(frozen=True)
class ReleaseInfo:
    """One release as listed in the targets metadata."""

    target_path: str
    model: str
    chip: str
    image_format: str
    version: str
    secure_version: int
    length: int
    sha256: str
    sbom: Mapping[str, str] = field(default_factory=dict)

    def custom(self) -> dict[str, Any]:
        """The ``custom`` field of the TUF target for this release."""
        data: dict[str, Any] = {
            "model": self.model,
            "chip": self.chip,
            "format": self.image_format,
            "version": self.version,
            "secure_version": self.secure_version,
        }
        if self.sbom:
            data["sbom"] = dict(self.sbom)
        return data


def release_from_target(target: TargetFile) -> ReleaseInfo:
    """Read the medfw release fields of a TUF target.

    Raises:
        InputError: the target has no (or malformed) medfw custom fields.
    """
    custom = target.custom
    try:
        model = custom["model"]
        secure_version = custom["secure_version"]
        version = custom["version"]
        if not isinstance(model, str) or not isinstance(version, str):
            raise TypeError("model/version")
        if not isinstance(secure_version, int) or isinstance(secure_version, bool) or secure_version < 0:
            raise TypeError("secure_version")
        sbom = custom.get("sbom") or {}
        if not isinstance(sbom, dict):
            raise TypeError("sbom")
    except (KeyError, TypeError) as e:
        raise InputError(f"target has no valid medfw release fields ({e})", field=target.path) from None
    return ReleaseInfo(
        target_path=target.path,
        model=model,
        chip=str(custom.get("chip", "")),
        image_format=str(custom.get("format", "")),
        version=version,
        secure_version=secure_version,
        length=target.length,
        sha256=target.hashes.get("sha256", ""),
        sbom={str(k): str(v) for k, v in sbom.items()},
    )
