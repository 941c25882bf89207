"""The audit log: every view of a case's personal data, every refusal, every account change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from responder.store.db import Database
from responder.store.models import AuditEvent


async def audit(
    db: Database, actor: str, action: str, now: datetime, case_id: str | None = None, **detail: Any
) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(AuditEvent).values(at=now, actor=actor, action=action, case_id=case_id, detail=detail)
        )


async def audit_in(session: AsyncSession, actor: str, action: str, now: datetime, **detail: Any) -> None:
    """An account change's row, in the change's own transaction: both are stored, or neither."""
    await session.execute(insert(AuditEvent).values(at=now, actor=actor, action=action, detail=detail))


@dataclass(frozen=True)
class AuditQuery:
    """Which entries, newest first: every filter optional; `before` is the keyset cursor (an id)."""

    case_id: str | None = None
    actor: str | None = None
    action: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    before: int | None = None
    limit: int = 100


async def audit_trail(db: Database, query: AuditQuery) -> tuple[list[AuditEvent], bool]:
    """One page of entries, and whether older ones match too (then `before` = the last id shown)."""
    conditions = [
        column == value
        for column, value in (
            (col(AuditEvent.case_id), query.case_id),
            (col(AuditEvent.actor), query.actor),
            (col(AuditEvent.action), query.action),
        )
        if value is not None
    ]
    if query.start is not None:
        conditions.append(col(AuditEvent.at) >= query.start)
    if query.end is not None:
        conditions.append(col(AuditEvent.at) < query.end)
    if query.before is not None:
        conditions.append(col(AuditEvent.id) < query.before)
    statement = select(AuditEvent).where(*conditions).order_by(col(AuditEvent.id).desc())
    async with db.sessions() as session:
        rows = list((await session.execute(statement.limit(query.limit + 1))).scalars().all())
    return rows[: query.limit], len(rows) > query.limit
