"""Overrides made through the API, and the schedule timeline that audits every change."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from responder.errors import Conflict, NotFound
from responder.oncall.schedule import Override
from responder.store.db import Database
from responder.store.models import ScheduleEvent, ScheduleOverride
from responder.store.queries import new_id

# Overrides that ended longer ago than this are kept in the database but no longer loaded.
KEEP_ENDED = timedelta(days=62)


def as_override(row: ScheduleOverride) -> Override:
    return Override(
        id=row.id,
        layer=row.layer,
        person=row.person_id,
        replaces=row.replaces,
        start=row.start_at,
        end=row.end_at,
        reason=row.reason,
    )


async def load_overrides(db: Database, now: datetime) -> dict[str, list[Override]]:
    """Every live override (not cancelled, not long ended), per schedule, oldest first."""
    async with db.sessions() as session:
        rows = (
            (
                await session.execute(
                    select(ScheduleOverride)
                    .where(
                        col(ScheduleOverride.cancelled_at).is_(None),
                        col(ScheduleOverride.end_at) > now - KEEP_ENDED,
                    )
                    .order_by(col(ScheduleOverride.created_at), col(ScheduleOverride.id))
                )
            )
            .scalars()
            .all()
        )
    found: dict[str, list[Override]] = {}
    for row in rows:
        found.setdefault(row.schedule_id, []).append(as_override(row))
    return found


async def add_override(
    db: Database, schedule_id: str, override: Override, actor: str, now: datetime
) -> ScheduleOverride:
    row = ScheduleOverride(
        id=new_id(),
        schedule_id=schedule_id,
        layer=override.layer,
        person_id=override.person,
        replaces=override.replaces,
        start_at=override.start,
        end_at=override.end,
        reason=override.reason,
        created_by=actor,
        created_at=now,
    )
    async with db.transaction() as session:
        session.add(row)
        session.add(_event(schedule_id, "override_added", actor, now, {"override": _detail(row)}))
    return row


async def cancel_override(
    db: Database, schedule_id: str, override_id: str, actor: str, now: datetime
) -> ScheduleOverride:
    async with db.transaction() as session:
        row = await session.get(ScheduleOverride, override_id, with_for_update=True)
        if row is None or row.schedule_id != schedule_id:
            raise NotFound("override not found")
        if row.cancelled_at is not None:
            raise Conflict(f"override cancelled at {row.cancelled_at.isoformat()} by {row.cancelled_by}")
        row.cancelled_at, row.cancelled_by = now, actor
        session.add(_event(schedule_id, "override_cancelled", actor, now, {"override": _detail(row)}))
    return row


async def record(db: Database, schedule_id: str, type_: str, actor: str, now: datetime, detail: Any) -> None:
    async with db.transaction() as session:
        session.add(_event(schedule_id, type_, actor, now, detail))


async def timeline(db: Database, schedule_id: str) -> list[ScheduleEvent]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(ScheduleEvent)
            .where(col(ScheduleEvent.schedule_id) == schedule_id)
            .order_by(col(ScheduleEvent.id))
        )
        return list(rows.scalars().all())


def _event(schedule_id: str, type_: str, actor: str, now: datetime, detail: Any) -> ScheduleEvent:
    return ScheduleEvent(schedule_id=schedule_id, at=now, type=type_, actor=actor, detail=detail)


def _detail(row: ScheduleOverride) -> dict[str, Any]:
    return {
        "id": row.id,
        "layer": row.layer,
        "person": row.person_id,
        "replaces": row.replaces,
        "start": row.start_at.isoformat(),
        "end": row.end_at.isoformat(),
        "reason": row.reason,
    }
