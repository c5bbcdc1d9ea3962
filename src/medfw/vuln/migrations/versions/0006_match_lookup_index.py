"""The lookup index of ``vuln_match`` carries what a scan filters on (kind and the version bounds), so rows whose
bounds cannot hold are dropped in the index and only the others are read from the table.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LOOKUP = ("key", "kind", "exact_key", "lo", "lo_incl", "hi", "hi_incl", "exact")


def upgrade() -> None:
    """Replace the key-only index by the covering lookup index."""
    op.drop_index("ix_vuln_match_key", table_name="vuln_match")
    op.create_index("ix_vuln_match_lookup", "vuln_match", list(LOOKUP))


def downgrade() -> None:
    """Back to the key-only index."""
    op.drop_index("ix_vuln_match_lookup", table_name="vuln_match")
    op.create_index("ix_vuln_match_key", "vuln_match", ["key"])
