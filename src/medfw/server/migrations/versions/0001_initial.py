"""Initial fleet server schema: devices, releases, rollouts, assignments, reports, API tokens.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("chip", sa.String(32), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("credential_salt", sa.String(64), nullable=False),
        sa.Column("credential_hash", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("secure_version", sa.Integer(), nullable=False),
        sa.Column("slot", sa.String(16), nullable=True),
        sa.Column("last_status", sa.String(32), nullable=True),
        sa.Column("last_seen", _TS, nullable=True),
        sa.Column("created", _TS, nullable=False),
    )
    op.create_index("ix_devices_model", "devices", ["model"])
    op.create_index("ix_devices_group_name", "devices", ["group_name"])
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("target_path", sa.String(256), nullable=False, unique=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("chip", sa.String(32), nullable=False),
        sa.Column("image_format", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("secure_version", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("sbom", sa.JSON(), nullable=False),
        sa.Column("created", _TS, nullable=False),
    )
    op.create_index("ix_releases_model", "releases", ["model"])
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("release_id", sa.Integer(), sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("phases", sa.JSON(), nullable=False),
        sa.Column("success_threshold", sa.Integer(), nullable=False),
        sa.Column("error_threshold", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_reason", sa.String(128), nullable=True),
        sa.Column("current_phase", sa.Integer(), nullable=False),
        sa.Column("created", _TS, nullable=False),
        sa.Column("updated", _TS, nullable=False),
    )
    op.create_index("ix_rollouts_state", "rollouts", ["state"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer(), sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(128), nullable=True),
        sa.Column("updated", _TS, nullable=False),
        sa.UniqueConstraint("rollout_id", "device_id", name="uq_assignment_rollout_device"),
    )
    op.create_index("ix_assignments_rollout_id", "assignments", ["rollout_id"])
    op.create_index("ix_assignment_device_state", "assignments", ["device_id", "state"])
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(128), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("secure_version", sa.Integer(), nullable=True),
        sa.Column("slot", sa.String(16), nullable=True),
        sa.Column("created", _TS, nullable=False),
    )
    op.create_index("ix_reports_device_id", "reports", ["device_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created", _TS, nullable=False),
    )


def downgrade() -> None:
    """Drop every table."""
    for table in ("api_tokens", "reports", "assignments", "rollouts", "releases", "devices"):
        op.drop_table(table)
