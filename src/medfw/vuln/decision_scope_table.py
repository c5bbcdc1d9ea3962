"""The ``decision_scope`` table (what a decision is about, :mod:`medfw.vuln.decision_scope`) and its writes.

The table lives in this module's own metadata; the index's migrations create it, and :func:`ensure_tables` creates
it in an index that predates them before a decision is written.
"""

from __future__ import annotations

import json
import weakref

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, Text, insert
from sqlalchemy.engine import Engine

from medfw.vuln.decision_scope import Scope
from medfw.vuln.index import VulnIndex

__all__ = ["add_scope", "decision_scope", "ensure_tables", "metadata"]

metadata = MetaData()
decision_scope = Table(
    "decision_scope",
    metadata,
    Column("decision_id", Integer, primary_key=True, autoincrement=False),
    Column("identities", Text, nullable=False),
    Column("version", String(200), nullable=False),
    Column("applies_to", String(400)),
    Column("fixed_in", String(200)),
    Column("carried_from_release", Integer),
    Column("carried_from_decision", Integer),
)
_READY: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose table exists


def ensure_tables(index: VulnIndex) -> None:
    """Create the scope table in the index database if it does not exist yet."""
    if index.engine in _READY:
        return
    metadata.create_all(index.engine)
    _READY.add(index.engine)


def add_scope(conn: Connection, decision_id: int, scope: Scope) -> None:
    """Insert the scope of a decision (inside the caller's transaction)."""
    conn.execute(
        insert(decision_scope).values(
            decision_id=decision_id,
            identities=json.dumps(list(scope.identities)),
            version=scope.version,
            applies_to=scope.applies_to,
            fixed_in=scope.fixed_in,
            carried_from_release=scope.carried_from_release,
            carried_from_decision=scope.carried_from_decision,
        )
    )
