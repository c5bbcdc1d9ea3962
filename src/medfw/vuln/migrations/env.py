"""Alembic environment of the vulnerability index: runs on the connection handed over by ``open_index``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from medfw.vuln.schema import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("vulnerability index migrations run only through medfw.vuln.index.open_index")
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
