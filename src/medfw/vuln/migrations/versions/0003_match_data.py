"""Pre-parsed matching and triage data per feed record (scans no longer decode whole records).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add vuln_record.match and vuln_record.triage (rows imported before stay NULL and are read the old way)."""
    op.add_column("vuln_record", sa.Column("match", sa.LargeBinary()))
    op.add_column("vuln_record", sa.Column("triage", sa.LargeBinary()))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("vuln_record") as batch:
        batch.drop_column("triage")
        batch.drop_column("match")
