"""account lifecycle: one-time passwords, token owners and use (issue 12, item 9)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 16:00:00
"""

import sqlalchemy as sa
from alembic import op

import responder.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_UTC = responder.store.types.UTCDateTime


def upgrade() -> None:
    # A plain ADD COLUMN (no batch mode): rebuilding app_user on SQLite would have to drop a table
    # that web_session and login_device point to.
    op.add_column(
        "app_user",
        sa.Column("must_change_password", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # api_token has no table pointing to it: batch mode may rebuild it on SQLite to add the key.
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", _UTC(timezone=True), nullable=True))
        batch_op.create_foreign_key("fk_api_token_user_id", "app_user", ["user_id"], ["id"])
        batch_op.create_index("ix_api_token_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index("ix_api_token_user_id")
        batch_op.drop_constraint("fk_api_token_user_id", type_="foreignkey")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("user_id")
    op.drop_column("app_user", "must_change_password")  # SQLite 3.35+ drops a column in place
