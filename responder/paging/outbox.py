"""The outbox: page rows are written first, then claimed and sent; a crash mid-send leaves a row to retry.

A page goes out only while its case is open (notices excepted), so nothing is paged after an accept.
A page's text, with its one-time accept link, is built for each send and never stored (kept_body).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, distinct, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import load_only
from sqlmodel import col

from responder.clock import Clock, SystemClock
from responder.domain import PageState
from responder.logging import get_logger
from responder.metrics import (
    PAGES_SENT,
    PHONE_LIMITS_REACHED,
    RECONCILED,
    SEND_RETRIES,
    THROTTLED,
    TWILIO_OUTAGE,
)
from responder.oncall.roster import Roster
from responder.paging.failures import mark_failed
from responder.paging.inbound import record_status
from responder.paging.links import LinkSigner
from responder.paging.messages import PageFacts, combined_sms, language_of, page_sms, sms_line
from responder.paging.throttle import FloodRule, Outgoing, PhoneUsage, SendPlan, plan_sends
from responder.paging.twilio_client import SendFailed, Sent, TwilioGateway
from responder.store import onehop
from responder.store.batch import Batcher
from responder.store.db import Database
from responder.store.models import Case, CaseEvent, OutboxLease, Page, PhoneLimitNotice
from responder.store.queries import (
    CLAIMED,
    INSERT_EVENT,
    OPEN,
    PENDING,
    add_event,
    event_row,
    insert_page_rows,
    insert_pages,
    moved,
    new_id,
    notice_row,
    rowcount,
)
from responder.store.types import UTCDateTime

log = get_logger(__name__)

CLAIM_BATCH = 50
# What a page's text and the flood limit read of its case: the claim never loads the alert.
CASE_FACTS = load_only(*(getattr(Case, name) for name in ("id", "ref", "risk_level", "region", "status")))
# At most this many requests to Twilio at once (Twilio's default concurrency is modest). Pages are
# claimed only as slots free up, so no claimed page waits behind others for its turn.
MAX_IN_FLIGHT = 20
# A page Twilio refuses for good fails at once; one it could not take (unreachable, 5xx, 429) is retried
# until Twilio answers: a provider's outage is not the person's failure. The cap keeps the wait short
# once Twilio is back.
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.5, 10.0
# By default, Twilio failing for longer than this is an outage the on-call managers are told about.
OUTAGE_NOTICE_AFTER_S = 60.0
# Recording a send's result is retried this many times (the database may be briefly away).
RECORD_TRIES = 6
# Twilio's statuses that mean it has the page but has not yet reported it out of its hands.
UNCONFIRMED = ("queued", "accepted", "sending", "initiated")
RECONCILE_BATCH = 100

# A status callback may beat the API's answer here and move the page on first: keep what it said then.
_MARK_SENT = (
    update(Page)
    .where(col(Page.id) == bindparam("page_id"))
    .values(
        twilio_sid=bindparam("sid"),
        sent_at=bindparam("now", type_=UTCDateTime()),
        updated_at=bindparam("now", type_=UTCDateTime()),
        status=moved(PageState.SENT),
        twilio_status=func.coalesce(col(Page.twilio_status), bindparam("twilio_status")),
    )
)

FailureHook = Callable[[str | None, str, str, int | None], Awaitable[None]]


@dataclass(frozen=True)
class Claimed:
    page_id: str
    case_id: str | None  # None for a notice about no case
    person_id: str
    channel: str
    purpose: str
    body: str  # the text to send, built at each claim: a page's carries its one-time link, never stored
    attempts: int
    # Pages this one's SMS also names (over the flood limit); they share its fate: sent, retried, failed.
    riders: tuple[Claimed, ...] = ()


Outcome = tuple[Claimed, Sent | SendFailed]
_INSERT_PAGE = onehop.Prepared(Page, or_ignore=True)
_INSERT_EVENT = onehop.Prepared(CaseEvent)
_MARK_SENT_SQLITE = onehop.Statement(_MARK_SENT)
# _phone_usage's count, for the one-hop intake: only placeholders ("?") are put in for {marks}.
_COUNT_SENT = (
    "SELECT person_id, COUNT(DISTINCT COALESCE(twilio_sid, id)) FROM page"
    " WHERE sent_at >= ? AND person_id IN ({marks}) GROUP BY person_id"
)


def kept_body(purpose: str, text: str) -> str:
    """What a page row keeps of the text it is sent with: a notice its text (news: a voice notice reads
    it out), a page nothing. A page's text carries a live accept link: a copy of the database must not
    accept cases, so the text is built again for every send (paging/links.py)."""
    return text if purpose == "notice" else ""


@dataclass
class NewPages:
    """Step 0's pages, for a one-hop intake on SQLite: claimed for this outbox when the flood rule
    sends each of them now and a send slot is free for each, else pending for the drain."""

    pending: list[dict[str, Any]]
    claimed_rows: list[dict[str, Any]]
    sends: list[Claimed]  # the claimed rows as sent, with their texts (not all of which are stored)
    slots_free: bool
    limit: int  # the flood limit (0: off)
    since: datetime  # the start of its window
    took: bool = False  # written claimed: start() them once the transaction has committed

    def write(self, db: sqlite3.Connection) -> None:
        """On the database thread, in the intake's transaction."""
        self.took = self.slots_free and self._under_limit(db)
        _INSERT_PAGE.run(db, self.claimed_rows if self.took else self.pending)

    def claimed(self) -> list[Claimed]:
        return list(self.sends)

    def _under_limit(self, db: sqlite3.Connection) -> bool:
        """Each person's count in the window (a combined SMS counts once) leaves room for these."""
        if not self.limit or not self.pending:
            return True
        wanted = Counter(r["person_id"] for r in self.pending)
        sql = _COUNT_SENT.replace("{marks}", ", ".join("?" for _ in wanted))
        sent = dict(db.execute(sql, (onehop.bind(UTCDateTime(), self.since), *wanted)).fetchall())
        return all(sent.get(person, 0) + n <= self.limit for person, n in wanted.items())


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
        flood: FloodRule | None = None,
        lease_s: float | None = None,
        outage_notice_s: float = OUTAGE_NOTICE_AFTER_S,
        lease_clock: Clock | None = None,
    ) -> None:
        self.db, self.gateway, self.roster, self.links = db, gateway, roster, links
        self.flood = flood or FloodRule(0, 60, 10)
        # Claims carry their owner; the owner renews a lease on itself. Only the claims of an owner
        # whose lease ran out (a process that died) go back to the queue: never a live one's.
        self.owner = new_id()
        self.lease_s = lease_s or max(2 * gateway.timeout_s, 6.0)
        # Leases are wall time, whatever the case clock (`clock`) is: a lease says the process is
        # alive, it is renewed by a periodic job every lease_s / 3 wall seconds, and it must outlast
        # a Twilio request, whose deadline is wall seconds. On the demo's scaled clock a lease in case
        # time would run out 20 times too soon, and a test's ManualClock jumping 5 minutes would end
        # every live lease at once (and send its claims again). So renewals, expiries and the orphan
        # check all read `lease_clock` (the system clock); nothing compares them with case times.
        self.lease_clock = lease_clock or SystemClock()
        self.public_url, self.clock, self.on_failure, self.on_retry = public_url, clock, on_failure, on_retry
        self._running = self._again = self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()  # the drain loop
        self._sending: set[asyncio.Task[None]] = set()  # one per page sent and not yet recorded
        # Those of them still waiting for Twilio's answer: each holds one of the MAX_IN_FLIGHT slots.
        # Recording the answer (group-committed, behind whatever the database is doing) holds none, or
        # a busy database would slow the sending down too.
        self._calling: set[asyncio.Task[None]] = set()
        self._sending_ids: set[str] = set()  # the pages those sends carry
        self._idle_claims: set[str] = set()  # claims of ours no send carried, at the last look
        self._results: Batcher[Outcome, list[tuple[Claimed, SendFailed]]] = Batcher(self._record_batch)
        self._slot_freed = asyncio.Event()
        self.outage_notice = timedelta(seconds=outage_notice_s)
        self._outage_since: datetime | None = None
        self._outage_logged = False

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
        """Claim what is due as send slots free up; each send records its own result as it comes."""
        self._running = True
        try:
            while not self._stopped:
                self._again = False
                free = MAX_IN_FLIGHT - len(self._calling)
                if free <= 0:
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
                    continue
                claimed = await self._claim(self.clock.now(), min(free, CLAIM_BATCH))
                for item in claimed:
                    self._start_send(item)
                if len(claimed) < min(free, CLAIM_BATCH) and not self._again:
                    break  # nothing more is due now
        except Exception:
            log.exception("outbox_flush_failed")  # the rows stay pending; the next kick or sweep sends them
        finally:
            self._running = False

    def _start_send(self, claimed: Claimed) -> None:
        task = asyncio.create_task(self._send_and_record(claimed))
        self._sending.add(task)
        self._calling.add(task)
        ids = [claimed.page_id, *(rider.page_id for rider in claimed.riders)]
        self._sending_ids.update(ids)

        def done(finished: asyncio.Task[None]) -> None:
            self._sending.discard(finished)
            self._sending_ids.difference_update(ids)
            self._answered(finished)

        task.add_done_callback(done)

    def _answered(self, task: asyncio.Task[None] | None) -> None:
        """Twilio has answered this send (or it ended): its slot is free for the next."""
        if task in self._calling:
            self._calling.discard(task)
            self._slot_freed.set()

    async def _send_and_record(self, claimed: Claimed) -> None:
        outcome = await self._send(claimed)
        self._answered(asyncio.current_task())
        # Twilio's answers are group-committed: those that came while one batch was written share the
        # next transaction (each send still waits for its own to commit before it counts as done).
        given_up = await self._results.submit(outcome)
        await self._note_provider(outcome)
        for item, exc in given_up:
            await self.on_failure(item.case_id, item.page_id, f"send failed: {exc.reason[:80]}", exc.code)

    async def _record_batch(self, outcomes: Sequence[Outcome]) -> list[list[tuple[Claimed, SendFailed]]]:
        """Record a batch of answers; for each, the pages given up on (its riders' included)."""
        given_up = await self._record_retrying(outcomes)
        return [[g for g in given_up if g[0] in (lead, *lead.riders)] for lead, _ in outcomes]

    async def _record_retrying(self, outcomes: Sequence[Outcome]) -> list[tuple[Claimed, SendFailed]]:
        """Twilio has answered: its answer must be written, even if the database is briefly away (else
        the claim would stay ours and the page unconfirmed)."""
        for attempt in range(RECORD_TRIES):
            try:
                return await self._record(outcomes)
            except Exception:
                log.exception("outbox_record_failed", attempt=attempt + 1)
                if attempt + 1 == RECORD_TRIES or self._stopped:
                    raise
                await asyncio.sleep(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))  # back off, then again
        return []

    def in_flight(self) -> set[asyncio.Task[None]]:
        """The drain loop and the sends under way."""
        return self._tasks | self._sending

    async def flush(self) -> None:
        """Send everything due now and wait for the answers (tools and benchmarks; the service kicks)."""
        self.kick()
        while self._tasks or self._sending:
            await asyncio.gather(*self._tasks, *self._sending, return_exceptions=True)

    async def quiesce(self, grace_s: float) -> bool:
        """Stop claiming; let the sends in flight finish and record their results, for up to `grace_s`.
        True when nothing was left in flight."""
        self._stopped = True
        self._slot_freed.set()
        busy = self._tasks | self._sending
        if not busy:
            return True
        _, late = await asyncio.wait(busy, timeout=grace_s)
        return not late

    async def stop(self, grace_s: float) -> None:
        """Quiesce, then cancel what is still in flight (its claim is requeued at the next start)."""
        await self.quiesce(grace_s)
        late = self._tasks | self._sending
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        try:
            await self._end_lease()
        except Exception:
            log.exception("outbox_lease_end_failed")  # it runs out by itself

    async def renew_lease(self) -> None:
        """Say this process is alive and still owns its claims, for another `lease_s`."""
        now = self.lease_clock.now()
        expires = now + timedelta(seconds=self.lease_s)
        async with self.db.engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(OutboxLease).values(owner=self.owner, expires_at=expires)
            await conn.execute(
                statement.on_conflict_do_update(index_elements=["owner"], set_={"expires_at": expires})
            )
            # Leases of processes gone for an hour need not stay.
            await conn.execute(
                delete(OutboxLease).where(col(OutboxLease.expires_at) < now - timedelta(hours=1))
            )

    async def keep_alive(self) -> None:
        """Renew the lease (a periodic job, three times per lease); a failure is logged, and the next
        run tries again before the lease can run out."""
        if self._stopped:
            return
        try:
            await self.renew_lease()
            await self._requeue_strays()
        except Exception:
            log.exception("outbox_lease_renewal_failed")

    async def _requeue_strays(self) -> None:
        """Claims of this outbox that none of its sends carries go back to pending. A claim is made
        in the transaction that writes it and its send starts once that commits; a caller cut short
        between the two (a request past its deadline, say) would leave a claim that this live
        process's lease keeps from everyone else, for ever. A claim counts as a stray only when two
        runs of this job in a row (a third of a lease apart) saw it so."""
        async with self.db.engine.begin() as conn:
            mine = await conn.execute(
                select(col(Page.id)).where(col(Page.status) == CLAIMED, col(Page.claimed_by) == self.owner)
            )
            idle = set(mine.scalars()) - self._sending_ids
            strays = idle & self._idle_claims
            if strays:
                await conn.execute(
                    update(Page)
                    .where(
                        col(Page.id).in_(sorted(strays)),
                        col(Page.status) == CLAIMED,
                        col(Page.claimed_by) == self.owner,
                    )
                    .values(status=PENDING, claimed_by=None, updated_at=self.clock.now())
                )
        self._idle_claims = idle - strays
        if strays:
            log.warning("outbox_strays_requeued", pages=len(strays))
            self.kick()

    async def _end_lease(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(OutboxLease).where(col(OutboxLease.owner) == self.owner))

    async def reclaim_orphans(self) -> tuple[int, datetime | None]:
        """Claims of owners whose lease ran out (they died mid-send) go back to pending: sent again,
        never lost. A live owner's claims, however old, are left alone. Returns how many came back,
        and when (on `lease_clock`) the next other owner holding claims runs out of lease."""
        now = self.lease_clock.now()
        alive = select(col(OutboxLease.owner)).where(col(OutboxLease.expires_at) > now)
        claimers = select(col(Page.claimed_by)).where(col(Page.status) == CLAIMED)
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                update(Page)
                .where(
                    col(Page.status) == CLAIMED,
                    or_(col(Page.claimed_by).is_(None), col(Page.claimed_by).not_in(alive)),
                )
                .values(status=PENDING, claimed_by=None, updated_at=self.clock.now())
            )
            next_expiry = (
                await conn.execute(
                    select(func.min(col(OutboxLease.expires_at))).where(
                        col(OutboxLease.owner) != self.owner, col(OutboxLease.owner).in_(claimers)
                    )
                )
            ).scalar()
        return rowcount(result), next_expiry

    async def _note_provider(self, outcome: Outcome) -> None:
        """Twilio unreachable, 5xx or 429 is an outage: logged when it starts, again once it passes a
        minute (an operator alerts on that line), and when it ends; the managers are told after."""
        claimed, result = outcome
        now = self.clock.now()
        if isinstance(result, SendFailed) and _provider_trouble(result):
            if self._outage_since is None:
                self._outage_since, self._outage_logged = now, False
                TWILIO_OUTAGE.set(1)
                log.warning("twilio_outage_started", reason=result.reason[:80])
            elif not self._outage_logged and now - self._outage_since > self.outage_notice:
                self._outage_logged = True
                log.error("twilio_outage_ongoing", seconds=round((now - self._outage_since).total_seconds()))
            return
        if isinstance(result, Sent) and self._outage_since is not None:
            since, self._outage_since = self._outage_since, None
            TWILIO_OUTAGE.set(0)
            lasted_s = (now - since).total_seconds()
            log.warning("twilio_outage_ended", seconds=round(lasted_s))
            if now - since > self.outage_notice:
                await self._tell_outage(claimed, since, now)

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
                        col(Page.status) == PageState.SENT,
                        col(Page.twilio_status).in_(UNCONFIRMED),
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

    async def _tell_outage(self, claimed: Claimed, since: datetime, now: datetime) -> None:
        """The managers learn of an outage by what works again: an SMS on the case that got through."""
        lasted = f"{round((now - since).total_seconds())}s"
        if claimed.case_id is None:
            return  # a notice about no case: the next send on a case tells them
        async with self.db.transaction() as session:
            case = await session.get(Case, claimed.case_id)
            if case is None:
                return
            facts = PageFacts(case.ref, case.risk_level, case.region)
            rows = []
            for manager in self.roster.everyone_on_call("manager", case.region, now):
                channel = self.roster.channel_for(manager, "sms")
                if channel is not None:
                    text = sms_line(
                        "provider_outage", facts, lang=language_of(manager.languages), task=lasted
                    )
                    rows.append(notice_row(case.id, manager.id, text, now, channel))
            await insert_pages(session, rows)
            detail = {
                "since": since.isoformat(),
                "until": now.isoformat(),
                "managers_told": [r["person_id"] for r in rows],
            }
            add_event(session, case.id, "provider_outage", "system", now, detail)
        self.kick()

    async def _claim(self, now: datetime, limit: int) -> list[Claimed]:
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    select(Page, Case)
                    .outerjoin(Case, col(Page.case_id) == col(Case.id))
                    .options(CASE_FACTS)
                    .where(col(Page.status) == PENDING, col(Page.not_before) <= now)
                    .where(or_(col(Page.purpose) == "notice", col(Case.status) == OPEN))
                    .order_by(col(Case.priority), col(Page.created_at))
                    .limit(limit)
                    .with_for_update(skip_locked=True, of=Page)
                )
            ).all()
            # A notice about no case (a shift's hand-off) is sent as it is: the flood limit counts it,
            # but there is no case to name in a combined SMS.
            caseless = [self._claim_row(page, None, now) for page, case in rows if case is None]
            on_cases = [(page, case) for page, case in rows if case is not None]
            if not self.flood.on:
                return caseless + [self._claim_row(page, case, now) for page, case in on_cases]
            by_id = {page.id: (page, case) for page, case in on_cases}
            due = [Outgoing(p.id, p.person_id, p.channel, p.purpose) for p, _ in on_cases]
            usage = await _phone_usage(session, {p.person_id for p in due}, now, self.flood)
            plan = plan_sends(due, usage, self.flood, now)
            await self._hold(session, plan, by_id, now)
            if plan.held:  # wake for the first of them (not the next sweep)
                self.on_retry(min(plan.held.values()))
            return caseless + [
                self._claim_combined(by_id, lead, plan.carried.get(lead, []), now) for lead in plan.send
            ]

    def _claim_row(
        self, page: Page, case: Case | None, now: datetime, carried_by: str | None = None
    ) -> Claimed:
        page.status, page.claimed_at, page.updated_at, page.carried_by = CLAIMED, now, now, carried_by
        page.claimed_by = self.owner
        page.attempts += 1
        # Built for this send, a resend too (after a refusal, or a claim requeued after a crash): the
        # link in a page's text is never read back from the row.
        text = self._render(page, case, now) if case is not None else page.body
        page.body = kept_body(page.purpose, text)
        return Claimed(page.id, page.case_id, page.person_id, page.channel, page.purpose, text, page.attempts)

    def _claim_combined(
        self, by_id: dict[str, tuple[Page, Case]], lead: str, carried: list[str], now: datetime
    ) -> Claimed:
        """The lead page, and when it names other cases too, one SMS text for all of them."""
        claimed = self._claim_row(*by_id[lead], now)
        if not carried:
            return claimed
        riders = tuple(self._claim_row(*by_id[page_id], now, carried_by=lead) for page_id in carried)
        person = self.roster.person(claimed.person_id)
        named = [
            (PageFacts(case.ref, case.risk_level, case.region), self._link(page, now))
            for page, case in (by_id[page_id] for page_id in [lead, *carried])
        ]
        body = combined_sms(language_of(person.languages if person else ()), named)
        return replace(claimed, body=body, riders=riders)

    async def _hold(
        self, session: AsyncSession, plan: SendPlan, by_id: dict[str, tuple[Page, Case]], now: datetime
    ) -> None:
        """Pages over the flood limit wait for their phone's next slot; the on-call managers are told
        (once per window per phone) that a phone reached the limit."""
        reason = f"flood limit: over {self.flood.limit} pages to this phone in {self.flood.window_s:g}s"
        for page_id, until in plan.held.items():
            page, case = by_id[page_id]
            THROTTLED.inc()
            if page.not_before <= page.created_at:  # the first hold of this page: say why on the timeline
                detail = {"page": page.id, "person": page.person_id, "channel": page.channel}
                add_event(
                    session,
                    case.id,
                    "page_held",
                    "system",
                    now,
                    {**detail, "until": until.isoformat(), "reason": reason},
                )
            page.not_before, page.updated_at = until, now
        for person_id in plan.over:
            case = next(c for p, c in by_id.values() if p.person_id == person_id)
            await self._tell_limit_reached(session, person_id, case, now)

    async def _tell_limit_reached(
        self, session: AsyncSession, person_id: str, case: Case, now: datetime
    ) -> None:
        since = now - timedelta(seconds=self.flood.window_s)
        connection = await session.connection()
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(PhoneLimitNotice).values(person_id=person_id, reached_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=["person_id"],
            set_={"reached_at": now},
            where=col(PhoneLimitNotice.reached_at) < since,
        )
        if rowcount(await connection.execute(statement)) != 1:
            return  # told already in this window
        PHONE_LIMITS_REACHED.inc()
        person = self.roster.person(person_id)
        name = person.name if person else person_id
        facts, why = (
            PageFacts(case.ref, case.risk_level, case.region),
            f"{self.flood.limit} in {self.flood.window_s:g}s",
        )
        rows = []
        for manager in self.roster.everyone_on_call("manager", case.region, now):
            channel = self.roster.channel_for(manager, "sms")
            if channel is None or manager.id == person_id:
                continue
            text = sms_line("phone_limit", facts, lang=language_of(manager.languages), holder=name, task=why)
            rows.append(notice_row(case.id, manager.id, text, now, channel))
        await insert_pages(session, rows)
        detail = {"person": person_id, "limit": self.flood.limit, "window_s": self.flood.window_s}
        add_event(
            session,
            case.id,
            "phone_limit_reached",
            "system",
            now,
            {**detail, "managers_told": [r["person_id"] for r in rows]},
        )
        log.warning("phone_limit_reached", case_id=case.id, person_id=person_id, limit=self.flood.limit)

    def _render(self, page: Page, case: Case, now: datetime) -> str:
        facts = PageFacts(case.ref, case.risk_level, case.region)
        return self._text(page.id, page.person_id, page.channel, page.purpose, page.body, facts, now)

    def _text(
        self,
        page_id: str,
        person_id: str,
        channel: str,
        purpose: str,
        body: str,
        facts: PageFacts,
        now: datetime,
    ) -> str:
        person = self.roster.person(person_id)
        lang = language_of(person.languages if person else ())
        if purpose == "notice":
            return body or sms_line("exhausted", facts, lang=lang)
        if channel == "voice":
            return f"voice page for case {facts.ref}"
        return page_sms(facts, lang, f"{self.public_url}/a/{self.links.make(page_id, person_id, now)}")

    def _link(self, page: Page, now: datetime) -> str:
        return f"{self.public_url}/a/{self.links.make(page.id, page.person_id, now)}"

    async def take_new(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], facts: PageFacts, now: datetime
    ) -> list[Claimed]:
        """Insert pages just decided (step 0, at intake) in the caller's transaction, claimed for this
        outbox at once: `start()` them after the commit, with no claim read back. When the flood rule
        would hold or combine any of them, or there are not enough free send slots, they are inserted
        pending instead and the drain sends them as usual. A crash before they are sent leaves claims
        of a dead owner: they come back once its lease runs out."""
        # (Pages another intake claimed and has not started yet are not counted: Twilio may briefly see
        # a few more than MAX_IN_FLIGHT requests at once.)
        free = MAX_IN_FLIGHT - len(self._calling)
        if self._stopped or len(rows) > free or not await self._all_go(conn, rows, now):
            await insert_page_rows(conn, rows)
            return []
        claimed = [self._claim_new(row, facts, now) for row in rows]
        for row, send in zip(rows, claimed, strict=True):
            body = kept_body(send.purpose, send.body)
            row.update(status=CLAIMED, claimed_by=self.owner, claimed_at=now, attempts=1, body=body)
        await insert_page_rows(conn, rows)
        return claimed

    def hop(self, rows: list[dict[str, Any]], facts: PageFacts, now: datetime) -> NewPages:
        """take_new() for SQLite's one-hop intake (store/onehop.py): the same choice, made on the
        database thread inside the intake's transaction by `NewPages.write`."""
        free = MAX_IN_FLIGHT - len(self._calling)
        sends = [self._claim_new(row, facts, now) for row in rows]
        claimed_rows = [
            {
                **row,
                "status": CLAIMED,
                "claimed_by": self.owner,
                "claimed_at": now,
                "attempts": 1,
                "body": kept_body(send.purpose, send.body),
            }
            for row, send in zip(rows, sends, strict=True)
        ]
        since = now - timedelta(seconds=self.flood.window_s)
        slots_free = not self._stopped and len(rows) <= free
        return NewPages(rows, claimed_rows, sends, slots_free, self.flood.limit, since)

    def _claim_new(self, row: dict[str, Any], facts: PageFacts, now: datetime) -> Claimed:
        """A row just decided, as its first send: its text built now."""
        text = self._text(
            row["id"], row["person_id"], row["channel"], row["purpose"], row["body"], facts, now
        )
        return Claimed(row["id"], row["case_id"], row["person_id"], row["channel"], row["purpose"], text, 1)

    def start(self, claimed: Sequence[Claimed]) -> None:
        """Send pages `take_new` claimed, now that their transaction committed."""
        for item in claimed:
            self._start_send(item)

    async def _all_go(self, conn: AsyncConnection, rows: list[dict[str, Any]], now: datetime) -> bool:
        """True when the flood rule sends every one of `rows` now, each on its own."""
        if not self.flood.on:
            return True
        due = [Outgoing(r["id"], r["person_id"], r["channel"], r["purpose"]) for r in rows]
        usage = await _phone_usage(conn, {r["person_id"] for r in rows}, now, self.flood)
        plan = plan_sends(due, usage, self.flood, now)
        return len(plan.send) == len(rows) and not plan.carried and not plan.held and not plan.over

    async def _send(self, claimed: Claimed) -> Outcome:
        person = self.roster.person(claimed.person_id)
        callback = f"{self.public_url}/twilio/status/{claimed.page_id}"
        if claimed.riders:
            callback += "?carries=1"  # the callback handler applies each status to the riders as well
        try:
            if person is None:
                raise SendFailed("person no longer in the roster", status=None, code=None, retryable=False)
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
        if self.db.is_sqlite and all(isinstance(result, Sent) for _, result in outcomes):
            # The common case, on SQLite: the whole batch in one hop to the database thread.
            sent = [
                (claimed, result)
                for lead, result in outcomes
                if isinstance(result, Sent)
                for claimed in (lead, *lead.riders)
            ]
            async with self.db.engine.connect() as conn:
                await onehop.transaction(conn, lambda db: _mark_sent_in_thread(db, sent, now))
            for claimed, _ in sent:
                _note_sent(claimed)
            return given_up
        async with self.db.engine.begin() as conn:
            for lead, result in outcomes:
                for claimed in (lead, *lead.riders):
                    if isinstance(result, Sent):
                        if (event := await _mark_sent(conn, claimed, result, now)) is not None:
                            events.append(event)
                        _note_sent(claimed)
                        continue
                    retry_at = await _mark_failed(conn, claimed, result, now)
                    if retry_at is FAILED_FOR_GOOD:
                        given_up.append((claimed, result))
                    elif retry_at is not None:
                        self.on_retry(retry_at)
            if events:
                await conn.execute(insert(CaseEvent), events)
        return given_up


def _note_sent(claimed: Claimed) -> None:
    PAGES_SENT.labels(claimed.channel, claimed.purpose).inc()
    log.debug(  # the alert's one line at info says what step 0 paged
        "page_sent", case_id=claimed.case_id, page_id=claimed.page_id, channel=claimed.channel
    )


def _mark_sent_in_thread(db: sqlite3.Connection, sent: Sequence[tuple[Claimed, Sent]], now: datetime) -> None:
    """_mark_sent for a batch, on SQLite's database thread (store/onehop.py)."""
    events = []
    for claimed, result in sent:
        db.execute(_MARK_SENT_SQLITE.sql, _MARK_SENT_SQLITE.params(_sent_params(claimed, result, now)))
        if (event := _sent_event(claimed, now)) is not None:
            events.append(event)
    _INSERT_EVENT.run(db, events)


def _sent_params(claimed: Claimed, sent: Sent, now: datetime) -> dict[str, Any]:
    return {"page_id": claimed.page_id, "sid": sent.sid, "now": now, "twilio_status": sent.status}


async def _mark_sent(
    conn: AsyncConnection, claimed: Claimed, sent: Sent, now: datetime
) -> dict[str, Any] | None:
    """Twilio took it: the page is sent (unless a callback moved it on already); its timeline event."""
    await conn.execute(_MARK_SENT, _sent_params(claimed, sent, now))
    return _sent_event(claimed, now)


def _sent_event(claimed: Claimed, now: datetime) -> dict[str, Any] | None:
    if claimed.case_id is None:
        return None
    kind = "notice_sent" if claimed.purpose == "notice" else "page_sent"
    detail = {"page": claimed.page_id, "person": claimed.person_id, "channel": claimed.channel}
    return event_row(claimed.case_id, kind, "system", now, detail)


# _mark_failed's answer for a page given up on (not a time: nothing is retried).
FAILED_FOR_GOOD = datetime.min.replace(tzinfo=UTC)


async def _mark_failed(
    conn: AsyncConnection, claimed: Claimed, exc: SendFailed, now: datetime
) -> datetime | None:
    """Retry with backoff and jitter when Twilio may take it later (returns when); otherwise the page
    has failed (FAILED_FOR_GOOD). None when the row was no longer ours to mark."""
    retry = exc.retryable  # until Twilio answers: the chain moves on by its own timers meanwhile
    delay_s = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (claimed.attempts - 1)) * random.uniform(0.5, 1.0)
    result = await conn.execute(
        update(Page)
        .where(col(Page.id) == claimed.page_id, col(Page.status) == CLAIMED)
        .values(
            # Not retried: mark_failed moves it to failed below (once, with its outcome).
            status=PENDING if retry else col(Page.status),
            claimed_by=None,
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
    log.warning(
        "page_send_failed",
        case_id=claimed.case_id,
        page_id=claimed.page_id,
        status=exc.status,
        code=exc.code,
        retry=retry,
    )
    detail: dict[str, Any] = {
        "person": claimed.person_id,
        "channel": claimed.channel,
        "error_code": exc.code,
        "reason": exc.reason[:200],
    }
    if not retry:
        await mark_failed(
            conn, claimed.page_id, claimed.case_id, claimed.channel, "send", "system", now, detail
        )
        return FAILED_FOR_GOOD
    retry_at = now + timedelta(seconds=delay_s)
    if claimed.case_id is None:
        return retry_at
    detail = {"page": claimed.page_id, **detail, "retry_at": retry_at.isoformat()}
    await conn.execute(INSERT_EVENT, [event_row(claimed.case_id, "page_retry", "system", now, detail)])
    return retry_at


async def _phone_usage(
    session: AsyncSession | AsyncConnection, person_ids: set[str], now: datetime, rule: FloodRule
) -> dict[str, PhoneUsage]:
    """Messages and calls each person got within the window (a combined SMS counts once: one sid)."""
    since = now - timedelta(seconds=rule.window_s)
    rows = await session.execute(
        select(
            col(Page.person_id),
            col(Page.channel),
            func.count(distinct(func.coalesce(col(Page.twilio_sid), col(Page.id)))),
            func.max(col(Page.sent_at)),
        )
        .where(col(Page.person_id).in_(person_ids), col(Page.sent_at) >= since)
        .group_by(col(Page.person_id), col(Page.channel))
    )
    sent: dict[str, int] = {}
    last: dict[str, dict[str, datetime]] = {}
    for person_id, channel, count, last_at in rows:
        sent[person_id] = sent.get(person_id, 0) + int(count)
        if last_at is not None:  # max() keeps the column's UTC type
            last.setdefault(person_id, {})[channel] = last_at
    return {person_id: PhoneUsage(sent[person_id], last[person_id]) for person_id in sent}


def _provider_trouble(failure: SendFailed) -> bool:
    """Twilio itself could not take the request (as opposed to refusing this page for good)."""
    return failure.retryable and (failure.status is None or failure.status == 429 or failure.status >= 500)
