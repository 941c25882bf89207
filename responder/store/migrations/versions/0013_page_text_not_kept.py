"""page rows keep no text: a page's SMS (its live one-time accept link) is built again at each send

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_PAGE = sa.table("page", sa.column("purpose", sa.String), sa.column("body", sa.String))


def upgrade() -> None:
    # The text was only ever a cache of what was sent; a copy of the database must hold no link that
    # accepts a case. Notices keep theirs: news, with no link (a voice notice reads it out).
    op.execute(_PAGE.update().where(_PAGE.c.purpose == "page", _PAGE.c.body != "").values(body=""))


def downgrade() -> None:
    pass  # nothing to put back: the code before 0013 builds a page's text when its row has none
