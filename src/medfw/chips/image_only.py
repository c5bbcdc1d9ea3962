"""Chips medfw knows only as an image format: their ``esp_chip_id_t`` and flash bus bases, so ``image info``
names them and segments are classified. Their Secure Boot v2 schemes and eFuse layout are not in the registry
yet, so signing, the device model and the eFuse policy refuse them; moving one to its own module with those
facets (and vectors) is how it becomes fully supported.
"""

from __future__ import annotations

from medfw.chips._model import Chip

CHIPS = (
    Chip("esp32c61", 20, 0x42800000, 0x42000000),
    Chip("esp32h21", 25, 0x42000000, 0x42000000),
    Chip("esp32h4", 28, 0x42000000, 0x42000000),
)
