"""inbound Twilio requests seen once (replays), page outcomes, the shared flood-limit count

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 03:10:00
"""

import sqlalchemy as sa
from alembic import op

import responder.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_UTC = responder.store.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "twilio_inbound",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("received_at", _UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "phone_limit_notice",
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("reached_at", _UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("person_id"),
    )
    with op.batch_alter_table("page", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("carried_by", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_page_person_sent", ["person_id", "sent_at"], unique=False)
    # Pages already recorded: the same definition as paging/failures.py applies from now on.
    op.execute("UPDATE page SET outcome = 'cancelled' WHERE status = 'canceled' AND twilio_sid IS NULL")
    op.execute(
        "UPDATE page SET outcome = 'failed' WHERE outcome IS NULL AND (status IN "
        "('failed', 'undelivered', 'busy', 'no-answer', 'canceled') OR answered_by LIKE 'machine%' "
        "OR answered_by = 'fax')"
    )


def downgrade() -> None:
    with op.batch_alter_table("page", schema=None) as batch_op:
        batch_op.drop_index("ix_page_person_sent")
        batch_op.drop_column("carried_by")
        batch_op.drop_column("outcome")
    op.drop_table("phone_limit_notice")
    op.drop_table("twilio_inbound")
