"""Schema migrations with Alembic, run from our own CLI (`responder db upgrade`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from responder.store.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (the latest by default)."""
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync_conn: command.upgrade(_config(sync_conn), revision))


async def downgrade(db: Database, revision: str) -> None:
    """Take the schema back to `revision` (tests of a migration start from the one before it)."""
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync_conn: command.downgrade(_config(sync_conn), revision))


async def current_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def is_up_to_date(db: Database) -> bool:
    return await current_revision(db) == head_revision()
