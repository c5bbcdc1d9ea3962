"""Decisions carried across releases (``decision_scope``) and supplier VEX (``supplier_document``,
``supplier_statement``). Indexes where the first use already created these tables keep them.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the three tables unless they exist."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "decision_scope" not in existing:
        op.create_table(
            "decision_scope",
            sa.Column("decision_id", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("identities", sa.Text(), nullable=False),
            sa.Column("version", sa.String(200), nullable=False),
            sa.Column("applies_to", sa.String(400)),
            sa.Column("fixed_in", sa.String(200)),
            sa.Column("carried_from_release", sa.Integer()),
            sa.Column("carried_from_decision", sa.Integer()),
        )
    if "supplier_document" not in existing:
        op.create_table(
            "supplier_document",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("sha256", sa.String(64), nullable=False, unique=True),
            sa.Column("format", sa.String(16), nullable=False),
            sa.Column("doc_id", sa.String(400), nullable=False),
            sa.Column("publisher", sa.String(400), nullable=False),
            sa.Column("supplier", sa.String(200), nullable=False),
            sa.Column("doc_date", sa.String(64), nullable=False),
            sa.Column("path", sa.Text(), nullable=False),
            sa.Column("imported_at", sa.String(64), nullable=False),
        )
    if "supplier_statement" not in existing:
        op.create_table(
            "supplier_statement",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("document_id", sa.Integer(), nullable=False),
            sa.Column("vuln_id", sa.String(200), nullable=False),
            sa.Column("product", sa.Text(), nullable=False),
            sa.Column("analysis", sa.Text(), nullable=False),
        )
        op.create_index("ix_supplier_statement_document_id", "supplier_statement", ["document_id"])
        op.create_index("ix_supplier_statement_vuln_id", "supplier_statement", ["vuln_id"])


def downgrade() -> None:
    """Drop the three tables."""
    for name in ("supplier_statement", "supplier_document", "decision_scope"):
        op.drop_table(name)
