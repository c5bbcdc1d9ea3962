"""medfw.sbom."""
