"""Audit-log witness: the latest signed checkpoint per audit log id and the checkpoint key it pinned.

Revision ID: 0003w
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003w"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``audit_witness``."""
    op.create_table(
        "audit_witness",
        sa.Column("log_id", sa.String(128), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop ``audit_witness``."""
    op.drop_table("audit_witness")
