"""Alembic migrations of the fleet server schema (run programmatically by :func:`medfw.server.db.migrate`)."""
