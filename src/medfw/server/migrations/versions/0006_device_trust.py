"""Device trust: certificates, revocation list, enrollment, signed claims, unit audit trails, maintenance windows,
rollout options and key-rotation campaigns.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the device-trust tables."""
    op.create_table(
        "device_identities",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("serial", sa.String(64), nullable=False, index=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("not_after", _TS, nullable=False),
        sa.Column("enrolled_via", sa.String(32), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.Column("created", _TS, nullable=False),
    )
    op.create_table(
        "revoked_certificates",
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False, index=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("revoked", _TS, nullable=False),
    )
    op.create_table(
        "preauthorized_serials",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("created", _TS, nullable=False),
    )
    op.create_table(
        "enrollment_requests",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("chip", sa.String(32), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created", _TS, nullable=False),
        sa.Column("updated", _TS, nullable=False),
    )
    op.create_table(
        "model_groups",
        sa.Column("model", sa.String(64), primary_key=True),
        sa.Column("group_name", sa.String(64), nullable=False),
    )
    op.create_table(
        "device_claims",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("last_seq", sa.JSON(), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("verified", _TS, nullable=False),
    )
    op.create_table(
        "device_trails",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("log_size", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("last_refusal", sa.String(256), nullable=True),
        sa.Column("updated", _TS, nullable=False),
    )
    op.create_table(
        "device_trail_entries",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(128), nullable=True),
        sa.Column("ts", sa.String(40), nullable=False),
    )
    op.create_table(
        "group_windows",
        sa.Column("group_name", sa.String(64), primary_key=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("days", sa.JSON(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
    )
    op.create_table(
        "rollout_options",
        sa.Column("rollout_id", sa.Integer(), sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("require_approval", sa.Boolean(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
    )
    op.create_table(
        "rotation_campaigns",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer(), sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("old_slot", sa.Integer(), nullable=False),
        sa.Column("old_key_digest", sa.String(64), nullable=False),
        sa.Column("new_key_digest", sa.String(64), nullable=False),
        sa.Column("new_key_fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_reason", sa.String(256), nullable=True),
        sa.Column("approvals", sa.JSON(), nullable=False),
        sa.Column("created", _TS, nullable=False),
        sa.Column("updated", _TS, nullable=False),
    )
    op.create_table(
        "rotation_units",
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("rotation_campaigns.id"), primary_key=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(128), nullable=True),
        sa.Column("updated", _TS, nullable=False),
    )


def downgrade() -> None:
    """Drop the device-trust tables."""
    for table in (
        "rotation_units",
        "rotation_campaigns",
        "rollout_options",
        "group_windows",
        "device_trail_entries",
        "device_trails",
        "device_claims",
        "model_groups",
        "enrollment_requests",
        "preauthorized_serials",
        "revoked_certificates",
        "device_identities",
    ):
        op.drop_table(table)
