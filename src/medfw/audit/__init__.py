"""medfw.audit."""
