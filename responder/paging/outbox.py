"""The outbox: page rows are written first, then claimed and sent; a crash mid-send leaves a row to retry.

A page goes out only while its case is open (notices excepted), so nothing is paged after an accept.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy import case as when
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from responder.clock import Clock
from responder.logging import get_logger
from responder.metrics import PAGE_FAILURES, PAGES_SENT, RECONCILED, SEND_RETRIES, THROTTLED
from responder.oncall.roster import Roster
from responder.paging.inbound import record_status
from responder.paging.links import LinkSigner
from responder.paging.messages import PageFacts, language_of, page_sms, sms_line
from responder.paging.throttle import PhoneThrottle
from responder.paging.twilio_client import SendFailed, Sent, TwilioGateway
from responder.store.db import Database
from responder.store.models import Case, CaseEvent, Page
from responder.store.queries import CLAIMED, OPEN, PENDING, event_row
from responder.store.types import UTCDateTime

log = get_logger(__name__)

CLAIM_BATCH = 50
# At most this many requests to Twilio at once (Twilio's default concurrency is modest).
MAX_IN_FLIGHT = 20
MAX_ATTEMPTS = 5
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.5, 8.0
# Statuses that mean Twilio has the page but has not yet reported it out of its hands.
UNCONFIRMED = ("queued", "accepted", "sending", "initiated")
RECONCILE_BATCH = 100

# A status callback may beat the API's answer here and move the status on first: keep its status then.
_MARK_SENT = (
    update(Page)
    .where(col(Page.id) == bindparam("page_id"))
    .values(
        twilio_sid=bindparam("sid"),
        sent_at=bindparam("now", type_=UTCDateTime()),
        updated_at=bindparam("now", type_=UTCDateTime()),
        status=when((col(Page.status) == CLAIMED, bindparam("twilio_status")), else_=col(Page.status)),
    )
)

FailureHook = Callable[[str, str, str, int | None], Awaitable[None]]


@dataclass(frozen=True)
class Claimed:
    page_id: str
    case_id: str
    person_id: str
    channel: str
    purpose: str
    body: str
    attempts: int


Outcome = tuple[Claimed, Sent | SendFailed]


class Outbox:
    """Sends page rows through Twilio; `flush()` sends everything due now."""

    def __init__(
        self,
        db: Database,
        gateway: TwilioGateway,
        roster: Roster,
        links: LinkSigner,
        public_url: str,
        clock: Clock,
        on_failure: FailureHook,
        on_retry: Callable[[datetime], None] = lambda _: None,
        throttle: PhoneThrottle | None = None,
    ) -> None:
        self.db, self.gateway, self.roster, self.links = db, gateway, roster, links
        self.throttle = throttle or PhoneThrottle(0, 60)
        # A row claimed longer ago than this with no answer recorded was lost in a crash: send it again.
        self.stale_claim_s = gateway.timeout_s * 2
        self.public_url, self.clock, self.on_failure, self.on_retry = public_url, clock, on_failure, on_retry
        self._limit = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._running = self._again = self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()

    def kick(self) -> None:
        """Send what is due, in the background: deciding more due steps need not wait for Twilio."""
        if self._stopped:
            return
        if self._running:
            self._again = True
            return
        task = asyncio.create_task(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        self._running = True
        try:
            while not self._stopped:
                self._again = False
                await self.flush()
                if not self._again:
                    break
        except Exception:
            log.exception("outbox_flush_failed")  # the rows stay pending; the next kick or sweep sends them
        finally:
            self._running = False

    async def stop(self, grace_s: float) -> None:
        """Let sends in flight finish (their results must be recorded), then stop."""
        self._stopped = True
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def flush(self) -> None:
        """Claim what is due, send it concurrently, record every answer in one transaction."""
        while claimed := await self._claim(self.clock.now()):
            outcomes = await asyncio.gather(*(self._send(c) for c in claimed))
            given_up = await self._record(outcomes)
            for item, exc in given_up:
                await self.on_failure(item.case_id, item.page_id, f"send failed: {exc.reason[:80]}", exc.code)
            if len(claimed) < CLAIM_BATCH:
                return

    async def reconcile(self, after_s: float) -> int:
        """Pages Twilio took but has said nothing more about for `after_s`: fetch their status and act
        on it as if the callback had come (a lost callback must not leave a failure unnoticed)."""
        now = self.clock.now()
        quiet = now - timedelta(seconds=after_s)
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    select(col(Page.id), col(Page.case_id), col(Page.channel), col(Page.twilio_sid))
                    .where(
                        col(Page.status).in_(UNCONFIRMED),
                        col(Page.twilio_sid).is_not(None),
                        col(Page.updated_at) < quiet,
                    )
                    .order_by(col(Page.updated_at))
                    .limit(RECONCILE_BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if rows:  # looked at now: the next look waits another `after_s`, whatever Twilio says
                await session.execute(
                    update(Page).where(col(Page.id).in_([r.id for r in rows])).values(updated_at=now)
                )
        for row in rows:
            try:
                fetched = await self.gateway.fetch_status(row.channel, str(row.twilio_sid))
            except SendFailed as exc:
                log.warning("reconcile_fetch_failed", page_id=row.id, error=exc.reason)
                continue
            RECONCILED.inc()
            log.info("page_reconciled", case_id=row.case_id, page_id=row.id, status=fetched.status)
            news = await record_status(
                self.db, row.id, fetched.status, str(fetched.error_code or ""), fetched.answered_by, None, now
            )
            if news is not None and news.failed:
                await self.on_failure(
                    news.case_id, news.page_id, f"{news.reason} (reconciled)", news.error_code
                )
        return len(rows)

    async def reclaim_stale(self) -> int:
        """Rows claimed by a process that died mid-send go back to pending (sent again, never lost)."""
        stale = self.clock.now() - timedelta(seconds=self.stale_claim_s)
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                update(Page)
                .where(col(Page.status) == CLAIMED, col(Page.claimed_at) < stale)
                .values(status=PENDING)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _claim(self, now: datetime) -> list[Claimed]:
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    select(Page, Case)
                    .join(Case, col(Page.case_id) == col(Case.id))
                    .where(col(Page.status) == PENDING, col(Page.not_before) <= now)
                    .where(or_(col(Page.purpose) == "notice", col(Case.status) == OPEN))
                    .order_by(col(Case.priority), col(Page.created_at))
                    .limit(CLAIM_BATCH)
                    .with_for_update(skip_locked=True, of=Page)
                )
            ).all()
            claimed = []
            for page, case in rows:
                page.status, page.claimed_at, page.updated_at = CLAIMED, now, now
                page.attempts += 1
                page.body = page.body or self._render(page, case, now)
                claimed.append(
                    Claimed(
                        page.id, case.id, page.person_id, page.channel, page.purpose, page.body, page.attempts
                    )
                )
        return claimed

    def _render(self, page: Page, case: Case, now: datetime) -> str:
        person = self.roster.person(page.person_id)
        facts = PageFacts(case.ref, case.risk_level, case.region)
        lang = language_of(person.languages if person else ())
        if page.purpose == "notice":
            return page.body or sms_line("exhausted", facts, lang=lang)
        if page.channel == "voice":
            return f"voice page for case {case.ref}"
        link = f"{self.public_url}/a/{self.links.make(page.id, page.person_id, now)}"
        return page_sms(facts, lang, link)

    async def _send(self, claimed: Claimed) -> Outcome:
        person = self.roster.person(claimed.person_id)
        callback = f"{self.public_url}/twilio/status/{claimed.page_id}"
        async with self._limit:
            try:
                if person is None:
                    raise SendFailed(
                        "person no longer in the roster", status=None, code=None, retryable=False
                    )
                if not self.throttle.allow(person.id, self.clock.now()):
                    THROTTLED.inc()
                    raise SendFailed(self.throttle.describe(), status=None, code=None, retryable=False)
                if claimed.channel not in self.roster.usable_channels(person):
                    # Flagged since the row was written (STOP, a refused number): do not send.
                    raise SendFailed(
                        f"{claimed.channel} flagged unusable for this person",
                        status=None,
                        code=None,
                        retryable=False,
                    )
                if claimed.channel == "voice":
                    twiml_url = f"{self.public_url}/twilio/voice/{claimed.page_id}"
                    return claimed, await self.gateway.place_call(person.phone, twiml_url, callback)
                return claimed, await self.gateway.send_sms(person.phone, claimed.body, callback)
            except SendFailed as exc:
                return claimed, exc

    async def _record(self, outcomes: Sequence[Outcome]) -> list[tuple[Claimed, SendFailed]]:
        """Write every send's result; returns the pages given up on (the chain must move on)."""
        now, events = self.clock.now(), []
        given_up: list[tuple[Claimed, SendFailed]] = []
        async with self.db.engine.begin() as conn:
            for claimed, result in outcomes:
                if isinstance(result, Sent):
                    PAGES_SENT.labels(claimed.channel, claimed.purpose).inc()
                    events.append(await _mark_sent(conn, claimed, result, now))
                    log.info(
                        "page_sent", case_id=claimed.case_id, page_id=claimed.page_id, channel=claimed.channel
                    )
                else:
                    event = await _mark_failed(conn, claimed, result, now)
                    if event is not None:
                        events.append(event)
                        if event["type"] == "page_failed":
                            given_up.append((claimed, result))
                        elif event["type"] == "page_retry":
                            self.on_retry(datetime.fromisoformat(event["detail"]["retry_at"]))
            if events:
                await conn.execute(insert(CaseEvent), events)
        return given_up


async def _mark_sent(conn: AsyncConnection, claimed: Claimed, sent: Sent, now: datetime) -> dict[str, Any]:
    # A status callback may have beaten us here and already moved the status on: keep it.
    await conn.execute(
        _MARK_SENT, {"page_id": claimed.page_id, "sid": sent.sid, "now": now, "twilio_status": sent.status}
    )
    kind = "notice_sent" if claimed.purpose == "notice" else "page_sent"
    detail = {"page": claimed.page_id, "person": claimed.person_id, "channel": claimed.channel}
    return event_row(claimed.case_id, kind, "system", now, detail)


async def _mark_failed(
    conn: AsyncConnection, claimed: Claimed, exc: SendFailed, now: datetime
) -> dict[str, Any] | None:
    """Retry with backoff and jitter when Twilio may take it later; otherwise the page has failed."""
    retry = exc.retryable and claimed.attempts < MAX_ATTEMPTS
    delay_s = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (claimed.attempts - 1)) * random.uniform(0.5, 1.0)
    result = await conn.execute(
        update(Page)
        .where(col(Page.id) == claimed.page_id, col(Page.status) == CLAIMED)
        .values(
            status=PENDING if retry else "failed",
            updated_at=now,
            error_code=exc.code,
            error_message=exc.reason[:400],
            not_before=now + timedelta(seconds=delay_s) if retry else now,
        )
    )
    if not getattr(result, "rowcount", 0):
        return None
    if retry:
        SEND_RETRIES.inc()
    else:
        PAGE_FAILURES.labels(claimed.channel, "send").inc()
    log.warning(
        "page_send_failed",
        case_id=claimed.case_id,
        page_id=claimed.page_id,
        status=exc.status,
        code=exc.code,
        retry=retry,
    )
    detail: dict[str, Any] = {
        "page": claimed.page_id,
        "person": claimed.person_id,
        "channel": claimed.channel,
        "error_code": exc.code,
        "reason": exc.reason[:200],
    }
    if retry:
        detail["retry_at"] = (now + timedelta(seconds=delay_s)).isoformat()
    return event_row(claimed.case_id, "page_retry" if retry else "page_failed", "system", now, detail)
