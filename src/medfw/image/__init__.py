"""medfw.image."""
