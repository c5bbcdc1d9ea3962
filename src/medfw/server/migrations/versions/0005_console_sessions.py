"""Console sessions (a signed-in browser, bound to the management token it signed in with); reports by rollout.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``console_sessions`` (only hashes of the session id are stored) and index reports by rollout."""
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, index=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reports_rollout_id", "reports", ["rollout_id"])


def downgrade() -> None:
    """Drop ``console_sessions`` and the reports index."""
    op.drop_index("ix_reports_rollout_id", table_name="reports")
    op.drop_table("console_sessions")
