"""Token expiry, last use and revocation; device credential rotation; acknowledged rollout failures; audit outbox.

Revision ID: 0004
Revises: 0003w
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003w"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the columns and the outbox table."""
    with op.batch_alter_table("api_tokens") as t:
        t.add_column(sa.Column("expires", _TS, nullable=True))
        t.add_column(sa.Column("last_used", _TS, nullable=True))
        t.add_column(sa.Column("revoked", _TS, nullable=True))
    with op.batch_alter_table("devices") as t:
        t.add_column(sa.Column("prev_credential_salt", sa.String(64), nullable=True))
        t.add_column(sa.Column("prev_credential_hash", sa.String(64), nullable=True))
        t.add_column(sa.Column("prev_valid_until", _TS, nullable=True))
    with op.batch_alter_table("rollouts") as t:
        t.add_column(sa.Column("acknowledged_failures", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "audit_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("created", _TS, nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("audit_outbox")
    with op.batch_alter_table("rollouts") as t:
        t.drop_column("acknowledged_failures")
    with op.batch_alter_table("devices") as t:
        t.drop_column("prev_valid_until")
        t.drop_column("prev_credential_hash")
        t.drop_column("prev_credential_salt")
    with op.batch_alter_table("api_tokens") as t:
        t.drop_column("revoked")
        t.drop_column("last_used")
        t.drop_column("expires")
