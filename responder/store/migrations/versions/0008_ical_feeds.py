"""iCal feed revocation (issue 12, item 11)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 16:00:00
"""

import sqlalchemy as sa
from alembic import op

import responder.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_UTC = responder.store.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "ical_feed",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ident", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("revoked_at", _UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kind", "ident"),
    )


def downgrade() -> None:
    op.drop_table("ical_feed")
