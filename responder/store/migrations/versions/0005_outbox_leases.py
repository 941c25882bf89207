"""claims carry their outbox; outbox leases (a live process's claims are never requeued)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 04:00:00
"""

import sqlalchemy as sa
from alembic import op

import responder.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_UTC = responder.store.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "outbox_lease",
        sa.Column("owner", sa.String(length=32), nullable=False),
        sa.Column("expires_at", _UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner"),
    )
    with op.batch_alter_table("page", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("page", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
    op.drop_table("outbox_lease")
