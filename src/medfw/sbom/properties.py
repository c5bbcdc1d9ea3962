"""Names of the CycloneDX properties medfw writes into SBOMs and reads back (no dependencies: the SBOM readers
import them without loading the CycloneDX model)."""

from __future__ import annotations

__all__ = ["PROP_CVE_EXCLUDE", "PROP_END_OF_SUPPORT", "PROP_SUPPORT_LEVEL"]

PROP_SUPPORT_LEVEL = "medfw:support:level"
PROP_END_OF_SUPPORT = "cdx:lifecycle:milestone:endOfSupport"
PROP_CVE_EXCLUDE = "medfw:cve-exclude"
