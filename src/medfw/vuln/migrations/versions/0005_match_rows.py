"""Matching reads flat, indexed rows: ``vuln_match`` (one row per vulnerable criterion with pre-normalised version
bounds, or one row per key for records evaluated as a whole) replaces ``vuln_key``; stored records are converted.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import zlib

import orjson
import sqlalchemy as sa
from alembic import op

from medfw.vuln.match_rows import match_rows

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PAGE = 2000


def _create() -> sa.Table:
    table = op.create_table(
        "vuln_match",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("rid", sa.String(300), nullable=False),
        sa.Column("vuln_id", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("ord", sa.Integer(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("part", sa.String(1)),
        sa.Column("criterion", sa.Text()),
        sa.Column("bound", sa.Text()),
        sa.Column("exact", sa.String(200)),
        sa.Column("exact_key", sa.LargeBinary()),
        sa.Column("lo", sa.LargeBinary()),
        sa.Column("lo_incl", sa.Boolean(), nullable=False),
        sa.Column("hi", sa.LargeBinary()),
        sa.Column("hi_incl", sa.Boolean(), nullable=False),
        sa.Column("attrs", sa.Text()),
    )
    assert table is not None
    return table


def upgrade() -> None:
    """Create ``vuln_match``, fill it from every stored record (page by page), drop ``vuln_key``."""
    table = _create()
    bind = op.get_bind()
    rec = sa.table(
        "vuln_record", sa.column("rid"), sa.column("source"), sa.column("vuln_id"), sa.column("data", sa.LargeBinary)
    )
    last = ""
    while True:
        q = sa.select(rec.c.rid, rec.c.source, rec.c.vuln_id, rec.c.data).where(rec.c.rid > last)
        page = bind.execute(q.order_by(rec.c.rid).limit(_PAGE)).all()
        if not page:
            break
        rows: list[dict[str, object]] = []
        for r in page:
            found, _tree = match_rows(orjson.loads(zlib.decompress(r.data)))
            rows.extend({**m, "rid": r.rid, "source": r.source, "vuln_id": r.vuln_id} for m in found)
        if rows:
            bind.execute(sa.insert(table), rows)
        last = page[-1].rid
    op.create_index("ix_vuln_match_key", "vuln_match", ["key"])
    op.create_index("ix_vuln_match_rid", "vuln_match", ["rid"])
    op.drop_table("vuln_key")


def downgrade() -> None:
    """Recreate ``vuln_key`` from the match rows and drop ``vuln_match``."""
    op.create_table(
        "vuln_key",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rid", sa.String(300), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
    )
    op.execute("INSERT INTO vuln_key (rid, key) SELECT DISTINCT rid, key FROM vuln_match")
    op.create_index("ix_vuln_key_rid", "vuln_key", ["rid"])
    op.create_index("ix_vuln_key_key", "vuln_key", ["key"])
    op.drop_table("vuln_match")
