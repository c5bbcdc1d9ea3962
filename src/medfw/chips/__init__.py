"""The one chip registry: everything medfw knows about an ESP32-family chip, one module per chip.

Adding a chip means adding its module here (plus its test vectors and docs) and listing it in ``_MODULES``: the
image format (:mod:`medfw.image.esp`), the device model (:mod:`medfw.device.chips`, :mod:`medfw.device.efuse`),
the eFuse policy check and the CLI choices all read this registry. Each chip module defines ``CHIP``, a
:class:`Chip` with its facets:

* image: ``chip_id`` (``esp_chip_id_t`` in the image header), ``drom_start`` / ``irom_start`` (the flash-mapped
  data and instruction bus bases esptool uses to classify segments), ``bootloader_offset``;
* Secure Boot v2: ``sbv2_schemes`` the ROM and bootloader verify (``SOC_SECURE_BOOT_V2_RSA`` / ``_ECC``,
  ``SOC_ECDSA_SUPPORT_CURVE_P384``) and ``signature_blocks`` (how many blocks of a sector it reads);
* key purposes: ``efuse.purpose_digest0``, the ``KEY_PURPOSE`` value of ``SECURE_BOOT_DIGEST0``;
* eFuse layout: ``efuse`` (family, digest slots, key blocks, digest length, ``SECURE_VERSION`` width, the eFuse
  that enables P-384) and ``efuse.fields``, the security-relevant eFuse rows of espefuse 5.6.0.

Facts come from esptool/espsecure/espefuse 5.x (``--virt`` read-outs) and ESP-IDF's ``soc_caps.h`` / Kconfig.
:mod:`medfw.chips.image_only` lists the chips known only as an image format. This package imports nothing from
the rest of medfw but :mod:`medfw.errors`, so every layer can use it.
"""

from __future__ import annotations

from medfw.chips import (
    esp32,
    esp32c2,
    esp32c3,
    esp32c5,
    esp32c6,
    esp32h2,
    esp32p4,
    esp32s2,
    esp32s3,
    image_only,
)
from medfw.chips._model import (
    ECDSA_P192,
    ECDSA_P256,
    ECDSA_P384,
    RSA3072,
    Chip,
    EfuseFamily,
    EfuseLayout,
    FieldDef,
)
from medfw.errors import UsageError

__all__ = [
    "CHIPS",
    "DEFAULT_CHIP",
    "ECDSA_P192",
    "ECDSA_P256",
    "ECDSA_P384",
    "RSA3072",
    "Chip",
    "EfuseFamily",
    "EfuseLayout",
    "FieldDef",
    "by_id",
    "get",
    "names",
]

_MODULES = (esp32, esp32s2, esp32c3, esp32s3, esp32c2, esp32c6, esp32h2, esp32p4, esp32c5)

#: every chip, by name
CHIPS: dict[str, Chip] = {
    c.name: c for c in sorted((*(m.CHIP for m in _MODULES), *image_only.CHIPS), key=lambda c: c.chip_id)
}
_BY_ID = {c.chip_id: c for c in CHIPS.values()}

#: the chip commands assume when none is given (the bundled example device's)
DEFAULT_CHIP = esp32c3.CHIP.name


def names() -> list[str]:
    """Every chip name, sorted."""
    return sorted(CHIPS)


def get(name: str) -> Chip:
    """The chip called ``name`` (``esp32c3``; case and dashes ignored).

    Raises:
        UsageError: unknown chip (the message lists the known ones).
    """
    key = name.lower().replace("-", "")
    try:
        return CHIPS[key]
    except KeyError:
        raise UsageError(f"unknown chip {name!r}; known: {', '.join(names())}", field="chip") from None


def by_id(chip_id: int) -> Chip | None:
    """The chip whose ``esp_chip_id_t`` is ``chip_id``, or None."""
    return _BY_ID.get(chip_id)
