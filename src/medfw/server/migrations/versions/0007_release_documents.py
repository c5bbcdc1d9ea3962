"""Documents attached to releases: the evidence bundle, VEX (CycloneDX, OpenVEX), the CSAF advisory and its signature.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``release_documents`` (one row per release and kind, the bytes stored with their SHA-256)."""
    op.create_table(
        "release_documents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(128), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("attached", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attached_by", sa.String(80), nullable=False),
        sa.UniqueConstraint("release_id", "kind", name="uq_release_documents_kind"),
    )
    op.create_index("ix_release_documents_release_id", "release_documents", ["release_id"])


def downgrade() -> None:
    """Drop ``release_documents``."""
    op.drop_index("ix_release_documents_release_id", table_name="release_documents")
    op.drop_table("release_documents")
