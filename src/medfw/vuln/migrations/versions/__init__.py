"""Revisions of the vulnerability index schema."""
