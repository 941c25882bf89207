"""The audit log: every view of a case's personal data, every refusal, every account change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
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


async def audit_trail(db: Database, case_id: str | None = None, limit: int = 500) -> list[AuditEvent]:
    async with db.sessions() as session:
        query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
        if case_id is not None:
            query = query.where(col(AuditEvent.case_id) == case_id)
        return list((await session.execute(query)).scalars().all())
