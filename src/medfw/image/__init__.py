"""Firmware image formats, pure bytes in / results out.

* :mod:`medfw.image.esp` — ESP32-family app and bootloader images, ``esp_app_desc_t``
* :mod:`medfw.image.sbv2` — ESP32 Secure Boot v2 signature sectors (sign, assemble, verify)
* :mod:`medfw.image.mcuboot` — MCUboot images (header, TLVs, trailer)

Submodules are imported on use so that importing one format never pulls in another.
"""

__all__ = ["esp", "mcuboot", "sbv2"]
