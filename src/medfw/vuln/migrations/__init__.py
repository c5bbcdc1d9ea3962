"""Alembic migrations of the vulnerability index."""
