"""The device's image check: what the bootloader (and the OTA path, before activation) accepts.

:func:`check_image` reads an ESP image from the start of a flash region (trailing bytes are ignored), finds its
Secure Boot v2 signature sector (the image padded to 4 KiB, then one sector), and checks, in this order:

1. the region is not erased (``empty_slot``), the image parses (``malformed_image``) and a signature sector
   follows it (``unsigned``, when secure boot is enabled);
2. the sector's signature scheme is one the chip's ROM and bootloader verify (``unsupported_scheme``: ECDSA on
   ESP32, ESP32-C3 or ESP32-S3), and the SBv2 signature verifies against a burned, non-revoked eFuse key digest
   (``bad_signature``, ``untrusted_key``, ``revoked_key``). Only the first ``chip.signature_blocks`` blocks count:
   ESP32 reads block 0 alone and ignores the others. Both checks run only when secure boot is enabled;
3. the image is for this chip (``wrong_chip``);
4. for apps: an app description exists (``no_app_desc``) and ``secure_version`` ≥ the eFuse counter
   (``rollback``) and fits the counter field (``secure_version_too_large``).

It never raises for a bad image: the result carries the reason code and message. Pure: bytes in, result out.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, replace

from medfw.device.chips import ChipSpec, chip_by_id
from medfw.device.efuse import Efuses
from medfw.errors import IntegrityError, MalformedImageError, MedfwError, SignatureError
from medfw.image import sbv2
from medfw.image.esp import EspImage

__all__ = ["CheckReason", "ImageCheck", "check_image", "signed_length"]

_SECTOR = sbv2.SECTOR_SIZE


class CheckReason(enum.StrEnum):
    """Why the device accepts or refuses an image (see the module docstring for the order of the checks)."""

    OK = "ok"
    EMPTY_SLOT = "empty_slot"
    MALFORMED_IMAGE = "malformed_image"
    UNSIGNED = "unsigned"
    UNSUPPORTED_SCHEME = "unsupported_scheme"
    BAD_SIGNATURE = "bad_signature"
    UNTRUSTED_KEY = "untrusted_key"
    REVOKED_KEY = "revoked_key"
    WRONG_CHIP = "wrong_chip"
    NO_APP_DESC = "no_app_desc"
    ROLLBACK = "rollback"
    SECURE_VERSION_TOO_LARGE = "secure_version_too_large"
    TOO_LARGE = "too_large"  # the OTA path: the image does not fit the slot
    READBACK_MISMATCH = "readback_mismatch"  # the OTA path: the written slot does not read back as the image


@dataclass(frozen=True)
class ImageCheck:
    """The outcome of :func:`check_image`.

    Attributes:
        ok: the image may run.
        reason: ``ok`` or a refusal code (:class:`CheckReason`).
        message: one human sentence.
        offset: byte offset (within the region) of the problem, when known.
        chip: the image's chip name, when it parsed.
        version / project / secure_version: from the app description, when present.
        key_slot: the eFuse digest slot whose key verified the image.
        sha256: SHA-256 of the signed region (image + padding + signature sector), when it parsed.
        length: bytes of the signed region.
    """

    ok: bool
    reason: CheckReason
    message: str
    offset: int | None = None
    chip: str | None = None
    version: str | None = None
    project: str | None = None
    secure_version: int | None = None
    key_slot: int | None = None
    sha256: str | None = None
    length: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", CheckReason(self.reason))
        if self.ok != (self.reason is CheckReason.OK):
            raise ValueError(f"an image check with reason {self.reason} cannot have ok={self.ok}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready view."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "message": self.message,
            "offset": self.offset,
            "chip": self.chip,
            "version": self.version,
            "project": self.project,
            "secure_version": self.secure_version,
            "key_slot": self.key_slot,
            "sha256": self.sha256,
        }


def signed_length(image_length: int) -> int:
    """Bytes of a signed image whose unsigned part is ``image_length`` bytes: padded to 4 KiB, plus a sector."""
    return -(-image_length // _SECTOR) * _SECTOR + _SECTOR


def _signature_reason(e: SignatureError, data: bytes, efuses: Efuses, chip: ChipSpec) -> CheckReason:
    """Tell a revoked key from an unknown one from a broken signature."""
    if e.field != "block.key":
        return CheckReason.BAD_SIGNATURE
    try:
        sector = sbv2.parse_signed_image(data)
    except MedfwError:
        return CheckReason.BAD_SIGNATURE
    revoked = {s.digest for s in efuses.key_slots() if s.revoked and s.digest is not None}
    if any(b.key_digest in revoked for b in sector.blocks[: chip.signature_blocks]):
        return CheckReason.REVOKED_KEY
    return CheckReason.UNTRUSTED_KEY


def _scheme_refusal(data: bytes, chip: ChipSpec, efuses: Efuses) -> tuple[str, int] | None:
    """Return (message, offset) when the signature sector uses a scheme the chip cannot verify, else None.

    A sector that does not parse is left to :func:`medfw.image.sbv2.verify_image`, which reports it.
    """
    try:
        sector = sbv2.parse_signed_image(data)
    except MedfwError:
        return None
    if chip.supports_scheme(sector.scheme):
        if sector.scheme is sbv2.Sbv2Scheme.ECDSA_P384 and not efuses.sha384_enabled:
            msg = f"ECDSA P-384 signatures verify on {chip.name} only after {chip.sha384_enable} is burned"
            return msg, sector.offset + 1
        return None
    message = (
        f"signature scheme {sector.scheme} cannot be verified by {chip.name}, "
        f"whose Secure Boot v2 verifies {chip.scheme_names} only"
    )
    return message, sector.offset + 1


def check_image(
    region: bytes,
    *,
    chip: ChipSpec,
    efuses: Efuses,
    counter: int | None,
    counter_bits: int | None = None,
) -> ImageCheck:
    """Decide whether the image at the start of ``region`` may run on this device.

    Args:
        region: flash bytes starting at the image (a slot, or the bootloader area).
        chip: the device's chip.
        efuses: the device's eFuses (trusted digests, revoke bits, secure boot enable).
        counter: the anti-rollback counter for an app; None for a bootloader (no secure_version check).
        counter_bits: width of the counter field; an app whose secure_version exceeds it is refused.
    """
    if not region or region[:_SECTOR].count(0xFF) == min(len(region), _SECTOR):
        return ImageCheck(False, CheckReason.EMPTY_SLOT, "no image: the region is erased (all 0xFF)", offset=0)
    try:
        img = EspImage.from_bytes(region)
    except MalformedImageError as e:
        return ImageCheck(False, CheckReason.MALFORMED_IMAGE, e.message, offset=e.offset)
    length = signed_length(img.image_length)
    base = ImageCheck(
        ok=False,
        reason=CheckReason.MALFORMED_IMAGE,
        message="not checked yet",
        chip=img.chip,
        version=img.app_desc.version if img.app_desc else None,
        project=img.app_desc.project_name if img.app_desc else None,
        secure_version=img.secure_version,
        length=length,
    )
    first_block = region[length - _SECTOR : length - _SECTOR + sbv2.BLOCK_SIZE]
    if efuses.secure_boot_enabled and (length > len(region) or first_block.count(0xFF) == len(first_block)):
        return replace(
            base, reason=CheckReason.UNSIGNED, message="no Secure Boot v2 signature sector follows the image"
        )
    if length > len(region):
        return replace(
            base, reason=CheckReason.MALFORMED_IMAGE, message="signature sector lies past the end of the region"
        )
    data = bytes(region[:length])
    base = replace(base, sha256=hashlib.sha256(data).hexdigest())
    if efuses.secure_boot_enabled:
        slots = [s for s in efuses.key_slots() if s.digest is not None]
        if not slots:
            return replace(
                base, reason=CheckReason.UNTRUSTED_KEY, message="secure boot is on but no key digest is burned"
            )
        refused = _scheme_refusal(data, chip, efuses)
        if refused is not None:
            message, offset = refused
            return replace(base, reason=CheckReason.UNSUPPORTED_SCHEME, message=message, offset=offset)
        try:
            result = sbv2.verify_image(
                data,
                trusted_digests=[s.digest for s in slots if s.digest is not None],
                revoked={i for i, s in enumerate(slots) if s.revoked},
            )
        except SignatureError as e:
            return replace(base, reason=_signature_reason(e, data, efuses, chip), message=e.message, offset=e.offset)
        except (MalformedImageError, IntegrityError) as e:
            return replace(base, reason=CheckReason.MALFORMED_IMAGE, message=e.message, offset=e.offset)
        if result.block_index >= chip.signature_blocks:
            first = result.blocks[0]
            msg = (
                f"{chip.name} verifies only signature block 0 and its key (digest {first.key_digest.hex()}) is not "
                f"trusted; the trusted key in block {result.block_index} is ignored"
            )
            return replace(base, reason=CheckReason.UNTRUSTED_KEY, message=msg, offset=first.offset)
        base = replace(base, key_slot=slots[result.key_slot].index)
    if img.chip_id != chip.chip_id:
        msg = f"image is for {chip_by_id(img.chip_id)}, this device is {chip.name}"
        return replace(base, reason=CheckReason.WRONG_CHIP, message=msg, offset=12)
    if counter is not None:
        sv = img.secure_version
        if sv is None:
            return replace(base, reason=CheckReason.NO_APP_DESC, message="app image has no esp_app_desc_t", offset=0x20)
        if sv < counter:
            msg = f"secure_version {sv} is below the eFuse anti-rollback counter {counter}"
            return replace(base, reason=CheckReason.ROLLBACK, message=msg, offset=0x24)
        if counter_bits is not None and sv > counter_bits:
            msg = f"secure_version {sv} exceeds the {counter_bits}-bit eFuse anti-rollback field"
            return replace(base, reason=CheckReason.SECURE_VERSION_TOO_LARGE, message=msg, offset=0x24)
    return replace(base, ok=True, reason=CheckReason.OK, message="image verified")
