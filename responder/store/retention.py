"""Retention: a resolved case's personal data redacted once it is no longer needed; the figures stay.

Two parts of a case are redacted, each after its own period from the resolution, set per outcome in
the config file (`retention:`): its *identity* (the alert's subject, content, location hints and
platform contact) and its *notes* (what staff wrote: a note's text, the outcome's reason). Redacting
deletes the ciphertext, it does not just lose a key: the alert is rewritten with its routing facts
alone, the texts are removed from the timeline and the outcome note is set to NULL. Nothing is opened
to do it (no key is needed). SQLite zeroes what it frees (secure_delete, store/db.py) and its WAL is
truncated after each batch. One audit row per case says what was removed, never the content.

A case on legal hold is not redacted until the hold is lifted. What the figures read (times, outcome,
flags, pages, tasks, the subject's pseudonym) is never touched, so every figure is the same before and
after. `responder subject erase` uses the same redaction, at once and for both parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from responder.domain import RESOLVED
from responder.errors import Conflict, NotFound
from responder.store.db import Database
from responder.store.models import AuditEvent, Case, CaseEvent, Integration
from responder.store.queries import rowcount
from responder.store.sealed import PERSONAL_DETAIL_KEYS, PREFIX, for_case
from responder.store.types import UTCDateTime

CASE: Table = Case.__table__  # type: ignore[attr-defined]
EVENT: Table = CaseEvent.__table__  # type: ignore[attr-defined]
AUDIT: Table = AuditEvent.__table__  # type: ignore[attr-defined]

# The alert's fields that say who the person is and where: removed with the identity.
IDENTITY_FIELDS = ("subject", "content", "location_hints", "platform_contact")
# Timeline events that carry what staff wrote (any other with a sealed value in it is found too).
_WRITTEN_EVENTS = ("note", "case_resolved")
BATCH = 200


@dataclass(frozen=True)
class Rules:
    """Seconds a resolved case's identity and notes are kept, by outcome (`default` for the rest)."""

    default: tuple[float, float]
    outcomes: Mapping[str, tuple[float, float]]

    def periods(self, outcome: str | None) -> tuple[float, float]:
        return self.outcomes.get(outcome or "", self.default)


@dataclass(frozen=True)
class Due:
    """A case to redact now, and which of its parts."""

    case_id: str
    alert_id: str
    detected_at: datetime
    risk_level: str
    outcome: str | None
    identity: bool
    notes: bool


@dataclass(frozen=True)
class Redacted:
    case_id: str
    identity: bool
    notes: bool
    texts_removed: int


def _cutoff(rules: Rules, part: int, now: datetime) -> ColumnElement[Any]:
    """The resolution time at or before which this part is due, for each case's own outcome."""

    def at(periods: tuple[float, float]) -> ColumnElement[Any]:
        return literal(now - timedelta(seconds=periods[part]), UTCDateTime())

    if not rules.outcomes:
        return at(rules.default)
    return case(
        {outcome: at(periods) for outcome, periods in rules.outcomes.items()},
        value=CASE.c.outcome,
        else_=at(rules.default),
    )


async def due_cases(db: Database, rules: Rules, now: datetime, limit: int = BATCH) -> list[Due]:
    """Resolved cases not on hold with a part whose period has run out, the longest resolved first."""
    identity_due = and_(CASE.c.identity_redacted_at.is_(None), CASE.c.resolved_at <= _cutoff(rules, 0, now))
    notes_due = and_(CASE.c.notes_redacted_at.is_(None), CASE.c.resolved_at <= _cutoff(rules, 1, now))
    statement = (
        select(
            CASE.c.id,
            CASE.c.alert_id,
            CASE.c.detected_at,
            CASE.c.risk_level,
            CASE.c.outcome,
            identity_due.label("identity"),
            notes_due.label("notes"),
        )
        .where(CASE.c.status == RESOLVED, CASE.c.held_at.is_(None), or_(identity_due, notes_due))
        .order_by(CASE.c.resolved_at, CASE.c.id)
        .limit(limit)
    )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(statement)).all()
    return [Due(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bool(r[6])) for r in rows]


async def redact(
    db: Database, due: Sequence[Due], now: datetime, actor: str, why: str, forget_subject: bool = False
) -> list[Redacted]:
    """Redact these parts of these cases in one transaction, with one audit row and one timeline event
    per case. A case put on hold since it was found is left alone. `forget_subject`: the pseudonym goes
    too (a subject's erasure; retention keeps it for the repeat-subject figures)."""
    if not due:
        return []
    done: list[Redacted] = []
    async with db.engine.begin() as conn:
        for item in due:
            if not await _claim(conn, item, now, forget_subject):
                continue  # held since it was found, or another replica redacted it first
            removed = await _redact_one(conn, item, now, forget_subject)
            done.append(Redacted(item.case_id, item.identity, item.notes, removed))
            parts = [p for p, on in (("identity", item.identity), ("notes", item.notes)) if on]
            fields = [f"alert.{f}" for f in IDENTITY_FIELDS] if item.identity else []
            if item.notes:
                fields += ["case.outcome_note", f"timeline texts: {removed}"]
            if forget_subject:
                fields.append("case.subject_key")
            await conn.execute(
                AUDIT.insert().values(
                    at=now,
                    actor=actor,
                    action="case_redacted",
                    case_id=item.case_id,
                    detail={"parts": parts, "removed": fields, "why": why},
                )
            )
            await conn.execute(
                EVENT.insert().values(
                    case_id=item.case_id,
                    at=now,
                    type="case_redacted",
                    actor=actor,
                    detail={"parts": parts, "why": why},
                )
            )
    if done and db.is_sqlite:
        await _truncate_wal(db)
    return done


async def _claim(conn: AsyncConnection, item: Due, now: datetime, erasing: bool) -> bool:
    """Mark the case's parts redacted, if it is still not held and (retention) still not redacted; one
    UPDATE, so that replicas running housekeeping at once redact and audit a case once: the second
    waits for the first's row lock and then finds nothing to do."""
    marks: dict[str, Any] = {}
    where = [CASE.c.id == item.case_id, CASE.c.held_at.is_(None)]
    for part, on in (("identity_redacted_at", item.identity), ("notes_redacted_at", item.notes)):
        if on:
            marks[part] = func.coalesce(CASE.c[part], now)
            if not erasing:
                where.append(CASE.c[part].is_(None))
    return rowcount(await conn.execute(update(CASE).where(*where).values(**marks))) == 1


async def _redact_one(conn: AsyncConnection, item: Due, now: datetime, forget_subject: bool) -> int:
    """One case's parts redacted; returns how many texts were removed from its timeline."""
    changes: dict[str, Any] = {}
    if item.identity:
        # The alert keeps what routing and the review use (all of it also in clear in its columns).
        changes["alert"] = for_case(
            item.case_id,
            {
                "alert_id": item.alert_id,
                "detected_at": item.detected_at.isoformat().replace("+00:00", "Z"),
                "risk": {"level": item.risk_level},
            },
        )
    if forget_subject:
        changes["subject_key"] = None
    removed = 0
    if item.notes:
        changes["outcome_note"] = None
        removed = await _remove_texts(conn, item.case_id)
    await conn.execute(update(CASE).where(CASE.c.id == item.case_id).values(**changes))
    return removed


async def _remove_texts(conn: AsyncConnection, case_id: str) -> int:
    raw = type_coerce(EVENT.c.detail, JSON())  # as stored: nothing is opened
    rows = (
        await conn.execute(
            select(EVENT.c.id, raw).where(
                EVENT.c.case_id == case_id,
                or_(EVENT.c.type.in_(_WRITTEN_EVENTS), cast(EVENT.c.detail, Text()).contains(PREFIX)),
            )
        )
    ).all()
    write = (
        update(EVENT)
        .where(EVENT.c.id == bindparam("b_id"))
        .values(detail=type_coerce(bindparam("b_d"), JSON()))
    )
    removed = 0
    for event_id, detail in rows:
        gone = [k for k in PERSONAL_DETAIL_KEYS if k in detail]
        if not gone:
            continue
        kept = {k: v for k, v in detail.items() if k not in PERSONAL_DETAIL_KEYS}
        await conn.execute(write, {"b_id": event_id, "b_d": {**kept, "redacted": gone}})
        removed += len(gone)
    return removed


async def _truncate_wal(db: Database) -> None:
    """The WAL still holds the pages as they were before the redaction: checkpoint it into the file and
    truncate it (a reader still on an older snapshot can keep it for now; the next batch tries again)."""
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def run_retention(db: Database, rules: Rules, now: datetime) -> list[Redacted]:
    """Every part due now redacted, a batch at a time (housekeeping's beat)."""
    done: list[Redacted] = []
    while True:
        due = await due_cases(db, rules, now)
        batch = await redact(db, due, now, "retention", "retention period over")
        done += batch
        if len(due) < BATCH or not batch:
            return done


async def set_hold(db: Database, case_id: str, by: str, reason: str, now: datetime) -> None:
    """Put a case on legal hold (nothing of it is redacted until the hold is lifted), audited."""
    async with db.engine.begin() as conn:
        row = (await conn.execute(select(CASE.c.held_at, CASE.c.held_by).where(CASE.c.id == case_id))).first()
        if row is None:
            raise NotFound("case not found")
        if row[0] is not None:
            raise Conflict(f"the case is already on legal hold (by {row[1]})")
        await conn.execute(
            update(CASE).where(CASE.c.id == case_id).values(held_at=now, held_by=by, hold_reason=reason)
        )
        await _hold_record(conn, case_id, by, "legal_hold_set", now, reason)


async def lift_hold(db: Database, case_id: str, by: str, reason: str, now: datetime) -> None:
    """End a case's legal hold, audited: retention applies again (at once, if its time has passed)."""
    async with db.engine.begin() as conn:
        row = (await conn.execute(select(CASE.c.held_at).where(CASE.c.id == case_id))).first()
        if row is None:
            raise NotFound("case not found")
        if row[0] is None:
            raise Conflict("the case is not on legal hold")
        await conn.execute(
            update(CASE).where(CASE.c.id == case_id).values(held_at=None, held_by=None, hold_reason=None)
        )
        await _hold_record(conn, case_id, by, "legal_hold_lifted", now, reason)


async def _hold_record(
    conn: AsyncConnection, case_id: str, by: str, action: str, now: datetime, reason: str
) -> None:
    await conn.execute(
        AUDIT.insert().values(at=now, actor=by, action=action, case_id=case_id, detail={"reason": reason})
    )
    await conn.execute(
        EVENT.insert().values(case_id=case_id, at=now, type=action, actor=by, detail={"reason": reason})
    )


async def subject_cases(db: Database, subject_key: str) -> list[tuple[str, str, str | None, bool, str]]:
    """The cases of one subject (by pseudonym), oldest first: id, status, outcome, on hold, platform."""
    integration: Table = Integration.__table__  # type: ignore[attr-defined]
    statement = (
        select(CASE.c.id, CASE.c.status, CASE.c.outcome, CASE.c.held_at.is_not(None), integration.c.name)
        .join(integration, integration.c.id == CASE.c.integration_id)
        .where(CASE.c.subject_key == subject_key)
        .order_by(CASE.c.received_at, CASE.c.id)
    )
    async with db.engine.connect() as conn:
        return [(r[0], r[1], r[2], bool(r[3]), r[4]) for r in (await conn.execute(statement)).all()]


async def erase(db: Database, case_ids: Sequence[str], now: datetime, actor: str) -> list[Redacted]:
    """A subject's erasure: both parts of these cases redacted now, and their pseudonym forgotten."""
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    CASE.c.id, CASE.c.alert_id, CASE.c.detected_at, CASE.c.risk_level, CASE.c.outcome
                ).where(CASE.c.id.in_(case_ids))
            )
        ).all()
    due = [Due(r[0], r[1], r[2], r[3], r[4], identity=True, notes=True) for r in rows]
    return await redact(db, due, now, actor, "the subject's erasure request", forget_subject=True)


async def audit_subject(
    db: Database, actor: str, action: str, now: datetime, case_ids: Sequence[str], **detail: Any
) -> None:
    """An audit row for each of `case_ids`, and one for the request itself (even when it found nothing):
    who asked, when, and what `detail` says of it."""
    async with db.engine.begin() as conn:
        rows: list[dict[str, Any]] = [{"case_id": case_id, "detail": detail} for case_id in case_ids]
        rows.append({"case_id": None, "detail": detail})
        for row in rows:
            await conn.execute(AUDIT.insert().values(at=now, actor=actor, action=action, **row))
