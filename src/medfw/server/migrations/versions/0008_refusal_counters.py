"""Refused-authentication counters shared by every server process: one row per key and interval.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``auth_refusals``."""
    op.create_table(
        "auth_refusals",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("bucket", sa.BigInteger(), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_index("ix_auth_refusals_bucket", "auth_refusals", ["bucket"])


def downgrade() -> None:
    """Drop ``auth_refusals``."""
    op.drop_index("ix_auth_refusals_bucket", table_name="auth_refusals")
    op.drop_table("auth_refusals")
