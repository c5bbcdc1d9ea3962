"""Postmarket surveillance: feed freshness, risk-change alerts, retired releases, scan counts and feed snapshots.

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
    """Add feed_state and alert; retired_at on release; counts and feed on release_scan."""
    op.create_table(
        "feed_state",
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("updated_at", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("data_date", sa.String(64), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
    )
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("component_ref", sa.String(1000), nullable=False),
        sa.Column("vuln_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.String(64), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.String(64)),
        sa.Column("closed_by", sa.String(200)),
        sa.Column("close_reason", sa.Text()),
    )
    op.create_index("ix_alert_release_id", "alert", ["release_id"])
    op.add_column("release", sa.Column("retired_at", sa.String(64)))
    op.add_column("release_scan", sa.Column("counts", sa.Text(), nullable=False, server_default="{}"))
    op.add_column("release_scan", sa.Column("feed", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    """Remove what upgrade added."""
    with op.batch_alter_table("release_scan") as batch:
        batch.drop_column("feed")
        batch.drop_column("counts")
    with op.batch_alter_table("release") as batch:
        batch.drop_column("retired_at")
    op.drop_table("alert")
    op.drop_table("feed_state")
