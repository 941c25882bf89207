"""The generation of each calendar feed (what its URL's key is made from) and its revocation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from responder.store.db import Database
from responder.store.models import IcalFeed


async def generations(db: Database, kind: str) -> dict[str, int]:
    """The generation of every feed of `kind` revoked at least once; any other feed is at 0."""
    async with db.sessions() as session:
        rows = await session.execute(
            select(col(IcalFeed.ident), col(IcalFeed.generation)).where(col(IcalFeed.kind) == kind)
        )
        return {ident: generation for ident, generation in rows.all()}


async def generation(db: Database, kind: str, ident: str) -> int:
    async with db.sessions() as session:
        found = await session.execute(
            select(col(IcalFeed.generation)).where(col(IcalFeed.kind) == kind, col(IcalFeed.ident) == ident)
        )
        return found.scalar() or 0


async def revoke(db: Database, kind: str, ident: str, now: datetime) -> int:
    """Move the feed to its next generation (its current URL stops working); the new generation.

    One upsert, so two revocations at once both count and neither is lost."""
    insert = sqlite.insert if db.is_sqlite else postgresql.insert
    first = insert(IcalFeed).values(kind=kind, ident=ident, generation=1, revoked_at=now)
    upsert = first.on_conflict_do_update(
        index_elements=["kind", "ident"],
        set_={"generation": col(IcalFeed.generation) + 1, "revoked_at": now},
    ).returning(col(IcalFeed.generation))
    async with db.transaction() as session:
        return int((await session.execute(upsert)).scalar_one())
