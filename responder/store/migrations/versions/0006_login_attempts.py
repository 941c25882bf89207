"""login attempts counted in the database (issue 12, item 5); audit bursts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 16:00:00
"""

import sqlalchemy as sa
from alembic import op

import responder.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_UTC = responder.store.types.UTCDateTime


def upgrade() -> None:
    # One row per key (a username, a client address, a known device) with a window in progress:
    # every replica counts on the same row, under its row lock.
    op.create_table(
        "login_limit",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_started_at", _UTC(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("first_refused_at", _UTC(timezone=True), nullable=True),
        sa.Column("last_refused_at", _UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_login_limit_window_started_at", "login_limit", ["window_started_at"])
    # A browser that has logged in as a user before: its attempts for that user count on their own.
    op.create_table(
        "login_device",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.Column("expires_at", _UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_login_device_user_id", "login_device", ["user_id"])
    # /audit filters by actor, kind and period and pages by id. Plain CREATE INDEX (no batch mode):
    # rebuilding audit_event on SQLite would drop its append-only triggers.
    op.create_index("ix_audit_event_actor_id", "audit_event", ["actor", "id"])
    op.create_index("ix_audit_event_action_id", "audit_event", ["action", "id"])
    op.create_index("ix_audit_event_at", "audit_event", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_at", table_name="audit_event")
    op.drop_index("ix_audit_event_action_id", table_name="audit_event")
    op.drop_index("ix_audit_event_actor_id", table_name="audit_event")
    op.drop_index("ix_login_device_user_id", table_name="login_device")
    op.drop_table("login_device")
    op.drop_index("ix_login_limit_window_started_at", table_name="login_limit")
    op.drop_table("login_limit")
