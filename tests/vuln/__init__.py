"""Tests of medfw.vuln."""
