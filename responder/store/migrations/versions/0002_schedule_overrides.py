"""schedule overrides, the schedule timeline, hand-off notices and contact flags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 18:40:00
"""

import sqlalchemy as sa
from alembic import op

import responder.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_override",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("schedule_id", sa.String(length=64), nullable=False),
        sa.Column("layer", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("replaces", sa.String(length=64), nullable=True),
        sa.Column("start_at", responder.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_at", responder.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", responder.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", responder.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("schedule_override", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_override_schedule_id"), ["schedule_id"], unique=False)
    op.create_table(
        "schedule_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.String(length=64), nullable=False),
        sa.Column("at", responder.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("schedule_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_event_schedule_id"), ["schedule_id"], unique=False)

    op.create_table(
        "handoff_notice",
        sa.Column("schedule_id", sa.String(length=64), nullable=False),
        sa.Column("layer", sa.String(length=64), nullable=False),
        sa.Column("start_at", responder.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", responder.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("schedule_id", "layer", "start_at"),
    )

    op.create_table(
        "contact_flag",
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("since", responder.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("person_id", "channel"),
    )


def downgrade() -> None:
    op.drop_table("contact_flag")
    op.drop_table("handoff_notice")
    with op.batch_alter_table("schedule_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_event_schedule_id"))
    op.drop_table("schedule_event")
    with op.batch_alter_table("schedule_override", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_override_schedule_id"))
    op.drop_table("schedule_override")
