"""medfw: secure boot signing, signed OTA, SBOM, vulnerability management and audit for device firmware."""

__version__ = "0.1.0"

__all__ = ["__version__"]
