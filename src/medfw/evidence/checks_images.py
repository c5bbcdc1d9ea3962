"""Evidence checks on the release's signed images and trusted keys (shared by build and verify)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medfw.crypto.keys import PublicKey, key_type_of, load_public_key
from medfw.errors import MedfwError
from medfw.evidence.spec import SignedFormat
from medfw.image import mcuboot as mcuboot_mod
from medfw.image import sbv2
from medfw.image.esp import EspImage

__all__ = ["key_digests", "load_keys", "verify_images"]


def key_digests(keys: Sequence[tuple[str, PublicKey]]) -> list[dict[str, Any]]:
    """The eFuse (SBv2) and MCUboot KEYHASH digests of each trusted key, in slot order."""
    out: list[dict[str, Any]] = []
    for slot, (name, key) in enumerate(keys):
        entry: dict[str, Any] = {"slot": slot, "file": name, "type": str(key_type_of(key))}
        try:
            entry["sbv2_digest"] = sbv2.public_key_digest(key).hex()
        except MedfwError as e:
            entry["sbv2_digest"] = None
            entry["sbv2_note"] = e.message
        entry["mcuboot_keyhash"] = mcuboot_mod.key_hash(key).hex()
        out.append(entry)
    return out


def load_keys(paths: Sequence[Path], *, base: Path) -> list[tuple[str, PublicKey]]:
    """Load public keys (or the public half of private key files), named relative to ``base``."""
    return [(p.relative_to(base).as_posix() if p.is_relative_to(base) else p.name, load_public_key(p)) for p in paths]


def verify_images(
    images: Sequence[tuple[str, str, str, bytes]],
    keys: Sequence[tuple[str, PublicKey]],
    *,
    revoked: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """Verify each ``(name, role, format, data)`` image against the trusted keys.

    Returns one JSON-friendly result per image: ``ok``, the key slot that verified, the image digest and, for
    ESP app images, the app descriptor (version, secure_version). Failures are results, not exceptions.
    """
    public_keys = [k for _, k in keys]
    results: list[dict[str, Any]] = []
    for name, role, fmt, data in images:
        res: dict[str, Any] = {
            "file": name,
            "role": role,
            "format": fmt,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        try:
            if fmt == SignedFormat.SBV2:
                v = sbv2.verify_image(data, public_keys=public_keys, revoked=revoked, path=name)
                res.update(
                    ok=True,
                    key_slot=v.key_slot,
                    key_file=keys[v.key_slot][0],
                    key_digest=v.key_digest.hex(),
                    scheme=str(v.scheme.name),
                    image_digest=v.image_digest.hex(),
                    blocks=len(v.blocks),
                )
                img = EspImage.from_bytes(data[: v.signed_length], path=name, strict=False)
                res["chip"] = img.chip
                if img.app_desc is not None:
                    res["version"] = img.app_desc.version
                    res["secure_version"] = img.app_desc.secure_version
                    res["project_name"] = img.app_desc.project_name
            else:
                m = mcuboot_mod.verify_image(data, public_keys)
                res.update(
                    ok=True,
                    key_hash=m.key_hash.hex(),
                    version=str(m.image.header.version),
                    secure_version=m.image.security_counter,
                    image_digest=m.digest.hex(),
                )
        except MedfwError as e:
            res.update(ok=False, error=e.diagnostics())
        results.append(res)
    return results
