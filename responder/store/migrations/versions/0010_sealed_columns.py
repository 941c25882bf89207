"""the person's data sealed at rest: case.alert and case.outcome_note hold sealed text (store/sealed.py)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:00:00
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A sealed value is base64 text (not JSON, and longer than the note it seals). Rows written
    # before stay readable as they are until `responder keys rotate` seals them.
    if op.get_context().dialect.name == "postgresql":
        op.execute('ALTER TABLE "case" ALTER COLUMN alert TYPE TEXT USING alert::text')
        op.execute('ALTER TABLE "case" ALTER COLUMN outcome_note TYPE TEXT')


def downgrade() -> None:
    # The columns stay text: a sealed value is not JSON, and no earlier code can open it anyway.
    pass
