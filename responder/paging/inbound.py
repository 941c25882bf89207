"""What Twilio tells us: delivery statuses, answered calls, and which page a reply is about."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from responder.domain import PageState
from responder.paging.failures import mark_failed
from responder.paging.status import FAILED, RANK, is_machine, moves_forward, state_of
from responder.store import onehop
from responder.store.batch import Batcher
from responder.store.db import Database
from responder.store.models import Case, CaseEvent, Page
from responder.store.queries import INSERT_EVENT, OPEN, event_row, moved, rowcount
from responder.store.types import UTCDateTime


@dataclass(frozen=True)
class StatusNews:
    """The outcome of a status callback: should the escalation move on now?"""

    case_id: str | None  # None for a notice about no case
    page_id: str
    failed: bool
    reason: str
    error_code: int | None = None


# Built once per state it can bring (constructing the CASE over every status per callback cost more
# than running it): Twilio's status moves forward only, our state only along domain.PAGE_MOVES.
_CURRENT_RANK = sql_case(RANK, value=col(Page.twilio_status), else_=0)


def _progress(to: PageState, in_sequence: bool) -> Any:
    statement = (
        update(Page)
        .where(col(Page.id) == bindparam("page_id"), bindparam("rank") > _CURRENT_RANK)
        .values(
            twilio_status=bindparam("new_status"),
            status=moved(to),
            updated_at=bindparam("now", type_=UTCDateTime()),
        )
        .returning(col(Page.case_id), col(Page.person_id), col(Page.channel))
    )
    if in_sequence:
        statement = statement.where(col(Page.last_sequence) < bindparam("sequence")).values(
            last_sequence=bindparam("sequence")
        )
    return statement


_PROGRESS = {
    (to, in_sequence): _progress(to, in_sequence)
    for to in (PageState.SENT, PageState.DELIVERED)
    for in_sequence in (False, True)
}
# The same for SQLite's one hop per batch (store/onehop.py).
_PROGRESS_SQLITE = {key: onehop.Statement(statement) for key, statement in _PROGRESS.items()}
_EVENT_ROW = onehop.Prepared(CaseEvent)


@dataclass(frozen=True)
class _Progress:
    page_id: str
    status: str
    to: PageState
    sequence: int | None
    now: datetime


async def record_status(
    db: Database,
    page_id: str,
    status: str,
    error_code: str | None,
    answered_by: str | None,
    sequence: int | None,
    now: datetime,
) -> StatusNews | None:
    """Apply one Twilio status callback (a fetched status, say) on its own; repeated or out-of-order
    ones change nothing."""
    return await StatusRecorder(db).record(page_id, status, error_code, answered_by, sequence, now)


class StatusRecorder:
    """Twilio's status callbacks as they come. Progress (sent, ringing, delivered...) decides nothing,
    so it is group-committed (store/batch.py): the callbacks that arrived meanwhile share one
    transaction, each answered once it committed. Failures and machine answers decide what follows
    (a failover): they are written at once, on their own."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._progress: Batcher[_Progress, StatusNews | None] = Batcher(self._write)

    async def record(
        self,
        page_id: str,
        status: str,
        error_code: str | None,
        answered_by: str | None,
        sequence: int | None,
        now: datetime,
    ) -> StatusNews | None:
        to = state_of(status)
        if to is None or to is PageState.FAILED or answered_by:
            return await _record_news(self._db, page_id, status, error_code, answered_by, sequence, now)
        return await self._progress.submit(_Progress(page_id, status, to, sequence, now))

    async def _write(self, batch: Sequence[_Progress]) -> list[StatusNews | None]:
        if self._db.is_sqlite:
            async with self._db.engine.connect() as conn:
                return await onehop.transaction(conn, lambda db: _write_progress_in_thread(db, batch))
        async with self._db.engine.begin() as conn:
            return await _write_progress(conn, batch)


def _progress_params(item: _Progress) -> dict[str, Any]:
    params: dict[str, Any] = {
        "page_id": item.page_id,
        "rank": RANK[item.status],
        "new_status": item.status,
        "now": item.now,
    }
    if item.sequence is not None:
        params["sequence"] = item.sequence
    return params


def _news_of(item: _Progress, row: Any, events: list[dict[str, Any]]) -> StatusNews | None:
    """A progress update's news (None: it was no news); its timeline event goes into `events`."""
    if row is None:
        return None
    case_id, person_id, channel = row
    if item.status in ("delivered", "in-progress") and case_id is not None:
        kind = "page_delivered" if item.status == "delivered" else "call_answered"
        detail = {"page": item.page_id, "person": person_id, "channel": channel, "status": item.status}
        events.append(event_row(case_id, kind, "twilio", item.now, detail))
    return StatusNews(case_id, item.page_id, False, item.status)


def _write_progress_in_thread(db: sqlite3.Connection, batch: Sequence[_Progress]) -> list[StatusNews | None]:
    """_write_progress on SQLite's database thread: the whole batch in one hop."""
    results: list[StatusNews | None] = []
    events: list[dict[str, Any]] = []
    for item in batch:
        statement = _PROGRESS_SQLITE[item.to, item.sequence is not None]
        row = db.execute(statement.sql, statement.params(_progress_params(item))).fetchone()
        results.append(_news_of(item, row, events))
    _EVENT_ROW.run(db, events)
    return results


async def _write_progress(conn: AsyncConnection, batch: Sequence[_Progress]) -> list[StatusNews | None]:
    """The common case: one conditional UPDATE per callback (the busiest write path), their events in
    one insert."""
    results: list[StatusNews | None] = []
    events: list[dict[str, Any]] = []
    for item in batch:
        statement = _PROGRESS[item.to, item.sequence is not None]
        row = (await conn.execute(statement, _progress_params(item))).first()
        results.append(_news_of(item, tuple(row) if row is not None else None, events))
    if events:
        await conn.execute(INSERT_EVENT, events)
    return results


async def _record_news(
    db: Database,
    page_id: str,
    status: str,
    error_code: str | None,
    answered_by: str | None,
    sequence: int | None,
    now: datetime,
) -> StatusNews | None:
    """Failures and answering machines: read the row under lock, record why, say whether to move on."""
    async with db.engine.begin() as conn:
        row = (
            await conn.execute(
                select(
                    col(Page.twilio_status),
                    col(Page.last_sequence),
                    col(Page.answered_by),
                    col(Page.case_id),
                    col(Page.person_id),
                    col(Page.channel),
                    col(Page.purpose),
                    col(Page.error_code),
                )
                .where(col(Page.id) == page_id)
                .with_for_update()
            )
        ).first()
        if row is None or (sequence is not None and sequence <= row.last_sequence):
            return None
        machine = is_machine(answered_by) and row.answered_by is None
        forward = moves_forward(row.twilio_status, status)
        if not forward and not machine:
            return None
        code = int(error_code) if error_code and error_code.isdigit() else row.error_code
        # A failure moves the state in mark_failed (once, with its outcome); progress moves it here.
        to = state_of(status) if forward else None
        progress = to is not None and to is not PageState.FAILED
        await conn.execute(
            update(Page)
            .where(col(Page.id) == page_id)
            .values(
                twilio_status=status if forward else row.twilio_status,
                status=moved(to) if to is not None and progress else col(Page.status),
                updated_at=now,
                error_code=code,
                answered_by=answered_by or row.answered_by,
                last_sequence=sequence if sequence is not None else row.last_sequence,
            )
        )
        detail = {"page": page_id, "person": row.person_id, "channel": row.channel, "status": status}
        failed = False
        if status in FAILED or machine:
            reason = "answered by a machine" if machine else f"{row.channel} {status}"
            detail |= {"error_code": code, "answered_by": answered_by, "reason": reason}
            failed = await mark_failed(
                conn, page_id, row.case_id, row.channel, "delivery", "twilio", now, detail
            )
        elif status in ("delivered", "in-progress") and row.case_id is not None:
            kind = "page_delivered" if status == "delivered" else "call_answered"
            await conn.execute(INSERT_EVENT, [event_row(row.case_id, kind, "twilio", now, detail)])
        return StatusNews(row.case_id, page_id, failed, detail.get("reason", status), code)


async def find_page(db: Database, person_id: str, code: str | None) -> tuple[Page, Case] | None:
    """The page a reply is about: the latest to this person for case `code`, else the latest open one."""
    async with db.sessions() as session:
        query = (
            select(Page, Case)
            .join(Case, col(Page.case_id) == col(Case.id))
            .where(col(Page.person_id) == person_id, col(Page.purpose) == "page")
            .order_by(col(Page.created_at).desc())
            .limit(1)
        )
        if code:
            query = query.where(func.upper(col(Case.ref)) == code.upper())
        else:
            open_row = (await session.execute(query.where(col(Case.status) == OPEN))).first()
            if open_row is not None:
                return open_row[0], open_row[1]
        row = (await session.execute(query)).first()
        return (row[0], row[1]) if row is not None else None


async def load_page(db: Database, page_id: str) -> tuple[Page, Case] | None:
    async with db.sessions() as session:
        page = await session.get(Page, page_id)
        if page is None:
            return None
        case = await session.get(Case, page.case_id)
        assert case is not None
        return page, case


async def note_no_input(db: Database, page_id: str, now: datetime) -> bool:
    """The call was answered but no key came after every prompt: the page failed (it was not
    answered). True when that is news for the chain."""
    async with db.engine.begin() as conn:
        page = (
            await conn.execute(
                select(col(Page.case_id), col(Page.person_id), col(Page.purpose)).where(
                    col(Page.id) == page_id
                )
            )
        ).first()
        if page is None:
            return False
        detail = {"person": page.person_id, "channel": "voice", "reason": "no key pressed"}
        failed = await mark_failed(conn, page_id, page.case_id, "voice", "delivery", "twilio", now, detail)
        return failed and page.purpose == "page"


async def riders_of(db: Database, page_id: str) -> list[str]:
    """The pages a combined SMS named besides its lead page."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(col(Page.id)).where(col(Page.carried_by) == page_id))
        return list(rows.scalars())


async def use_link(db: Database, page_id: str, now: datetime) -> bool:
    """Mark a page's one-time link used; False when it was used before (only one use ever counts)."""
    async with db.transaction() as session:
        used = await session.execute(
            update(Page)
            .where(col(Page.id) == page_id, col(Page.link_used_at).is_(None))
            .values(link_used_at=now)
        )
    return rowcount(used) == 1
