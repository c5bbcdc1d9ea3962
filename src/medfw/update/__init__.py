"""medfw.update."""
