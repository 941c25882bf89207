"""the subject's pseudonym on each case: a keyed HMAC of (integration, account id), indexed

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 08:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both databases: SQLite adds and drops a column in place (3.35 and later),
# where a batch operation would copy the table and trip the foreign keys that point at it.


def upgrade() -> None:
    op.add_column("case", sa.Column("subject_key", sa.String(length=64), nullable=True))
    op.create_index("ix_case_subject_key", "case", ["subject_key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_case_subject_key", table_name="case")
    op.execute('ALTER TABLE "case" DROP COLUMN subject_key')
