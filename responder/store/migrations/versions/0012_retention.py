"""retention: when a case's personal data was redacted, and a legal hold that suspends it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 11:30:00
"""

import sqlalchemy as sa
from alembic import op

import responder.store.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Plain ALTER TABLE on both databases, as in 0011 (a batch copy would trip the foreign keys).
_COLUMNS = ("identity_redacted_at", "notes_redacted_at", "held_at", "held_by", "hold_reason")


def upgrade() -> None:
    when = responder.store.types.UTCDateTime(timezone=True)
    op.add_column("case", sa.Column("identity_redacted_at", when, nullable=True))
    op.add_column("case", sa.Column("notes_redacted_at", when, nullable=True))
    op.add_column("case", sa.Column("held_at", when, nullable=True))
    op.add_column("case", sa.Column("held_by", sa.String(length=80), nullable=True))
    op.add_column("case", sa.Column("hold_reason", sa.Text(), nullable=True))
    # Housekeeping looks for resolved cases not yet redacted, oldest first.
    op.create_index("ix_case_retention", "case", ["status", "resolved_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_case_retention", table_name="case")
    for column in reversed(_COLUMNS):
        op.execute(f'ALTER TABLE "case" DROP COLUMN {column}')
