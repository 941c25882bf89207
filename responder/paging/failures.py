"""What a failed page is, in one place: the timeline, the review figures, the CSV and Prometheus all
count the pages this module marks, and nothing else.

A page (or notice) has failed when Twilio refused it for good or it could not be sent (send stage), when
Twilio reports it failed, undelivered, busy, not answered or cancelled, when a machine answered the call,
or when a person answered and pressed no key (delivery stage). A page cancelled because the case was
accepted before it went out has not failed: its outcome is "cancelled". A page fails at most once: the
first of these marks it, later news about it is still recorded on the page but counts for nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from responder.domain import PageState
from responder.metrics import PAGE_FAILURES
from responder.store.models import Page
from responder.store.queries import INSERT_EVENT, event_row, moved, rowcount

FAILED, CANCELLED = PageState.FAILED.value, PageState.CANCELLED.value
Stage = Literal["send", "delivery"]

_MARK = (
    update(Page)
    .where(col(Page.id) == bindparam("page_id"), col(Page.outcome).is_(None))
    .values(outcome=FAILED, status=moved(PageState.FAILED))
)


async def mark_failed(
    conn: AsyncConnection,
    page_id: str,
    case_id: str | None,
    channel: str,
    stage: Stage,
    actor: str,
    now: datetime,
    detail: dict[str, Any],
) -> bool:
    """Mark the page failed and put `page_failed` on its case's timeline, once; True the first time."""
    if rowcount(await conn.execute(_MARK, {"page_id": page_id})) != 1:
        return False
    PAGE_FAILURES.labels(channel, stage).inc()
    if case_id is None:
        return True  # a notice about no case: failed, with no timeline to say so on
    await conn.execute(
        INSERT_EVENT, [event_row(case_id, "page_failed", actor, now, {"page": page_id, **detail})]
    )
    return True
