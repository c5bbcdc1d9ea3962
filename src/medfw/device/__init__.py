"""medfw.device."""
