"""Fleet state generation: one counter bumped by every change that can alter a poll answer.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the single-row ``fleet_state`` table."""
    table = op.create_table(
        "fleet_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("generation", sa.Integer(), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    """Drop ``fleet_state``."""
    op.drop_table("fleet_state")
