"""medfw.server."""
