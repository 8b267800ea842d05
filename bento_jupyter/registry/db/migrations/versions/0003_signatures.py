"""Signatures: a version's bento.sig (Sigstore bundle), the key it names, whether the registry verified it.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "signatures",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("bundle", sa.Text, nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
        sa.Column("verified", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signatures")
