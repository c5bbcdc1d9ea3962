"""The vulnerability index as it was before versioned migrations (feed records, lookup keys, KEV, EPSS,
decisions, releases and their scans, the import log). Databases created then are stamped with this revision.

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


def upgrade() -> None:
    """Create the original tables."""
    op.create_table(
        "vuln_record",
        sa.Column("rid", sa.String(300), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(200), nullable=False),
        sa.Column("vuln_id", sa.String(200), nullable=False),
        sa.Column("modified", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("has_config", sa.Boolean(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_vuln_record_vuln_id", "vuln_record", ["vuln_id"])
    op.create_table(
        "vuln_key",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rid", sa.String(300), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
    )
    op.create_index("ix_vuln_key_rid", "vuln_key", ["rid"])
    op.create_index("ix_vuln_key_key", "vuln_key", ["key"])
    op.create_table(
        "kev",
        sa.Column("cve_id", sa.String(64), primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
    )
    op.create_table(
        "epss",
        sa.Column("cve_id", sa.String(64), primary_key=True),
        sa.Column("epss", sa.Float(), nullable=False),
        sa.Column("percentile", sa.Float(), nullable=False),
        sa.Column("score_date", sa.String(64), nullable=False),
    )
    op.create_table(
        "decision",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("serial", sa.String(200), nullable=False),
        sa.Column("component_ref", sa.String(1000), nullable=False),
        sa.Column("vuln_id", sa.String(200), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("justification", sa.String(64)),
        sa.Column("responses", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
    )
    op.create_index("ix_decision_serial", "decision", ["serial"])
    op.create_table(
        "release",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("serial", sa.String(200), nullable=False, unique=True),
        sa.Column("name", sa.String(400), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("sbom", sa.LargeBinary(), nullable=False),
        sa.Column("added_at", sa.String(64), nullable=False),
    )
    op.create_table(
        "release_scan",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("scanned_at", sa.String(64), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
    )
    op.create_index("ix_release_scan_release_id", "release_scan", ["release_id"])
    op.create_table(
        "import_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    """Drop every table."""
    for name in ("import_log", "release_scan", "release", "decision", "epss", "kev", "vuln_key", "vuln_record"):
        op.drop_table(name)
