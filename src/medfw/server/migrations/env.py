"""Alembic environment: migrations run on the connection handed over by :func:`medfw.server.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from medfw.server.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("medfw migrations run only through medfw.server.db.migrate")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
