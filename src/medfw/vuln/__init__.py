"""medfw.vuln."""
