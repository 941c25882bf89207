"""one page lifecycle: our state in `status`, Twilio's raw status in `twilio_status`; notices about no case

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Twilio's statuses as the `status` column held them, and the state each page is in now.
_SENT = ("queued", "accepted", "initiated", "sending", "sent", "ringing")
_DELIVERED = ("in-progress", "delivered", "read", "completed")
_FAILED = ("failed", "undelivered", "busy", "no-answer")


_PAGE = sa.table(
    "page",
    sa.column("status", sa.String),
    sa.column("twilio_status", sa.String),
    sa.column("twilio_sid", sa.String),
    sa.column("outcome", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("page", schema=None) as batch_op:
        batch_op.add_column(sa.Column("twilio_status", sa.String(length=32), nullable=True))
        batch_op.alter_column("case_id", existing_type=sa.String(length=36), nullable=True)
    status = _PAGE.c.status
    op.execute(
        _PAGE.update()
        .where(status.in_((*_SENT, *_DELIVERED, *_FAILED, "canceled")), _PAGE.c.twilio_sid.is_not(None))
        .values(twilio_status=status)
    )
    op.execute(
        _PAGE.update().values(
            status=sa.case(
                (_PAGE.c.outcome == "failed", "failed"),
                (_PAGE.c.outcome == "cancelled", "cancelled"),
                (sa.and_(status == "canceled", _PAGE.c.twilio_sid.is_(None)), "cancelled"),
                (status.in_((*_FAILED, "canceled")), "failed"),
                (status.in_(_DELIVERED), "delivered"),
                (status.in_(_SENT), "sent"),
                else_=status,
            )
        )
    )


def downgrade() -> None:
    op.execute(_PAGE.update().where(_PAGE.c.twilio_status.is_not(None)).values(status=_PAGE.c.twilio_status))
    op.execute(_PAGE.update().where(_PAGE.c.status == "cancelled").values(status="canceled"))
    op.execute("DELETE FROM page WHERE case_id IS NULL")
    with op.batch_alter_table("page", schema=None) as batch_op:
        batch_op.alter_column("case_id", existing_type=sa.String(length=36), nullable=False)
        batch_op.drop_column("twilio_status")
