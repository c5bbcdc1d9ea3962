"""medfw.evidence."""
