"""The engine's I/O shell: load due cases, decide (pure), write the result in one transaction, then send."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from responder.clock import Clock
from responder.engine.decide import CaseView, Decision, next_actions, pull_forward
from responder.engine.failover import after_failure, cuts_the_wait_short
from responder.engine.plan import Plan
from responder.engine.playbook import AlertFacts
from responder.engine.reactions import react
from responder.engine.scheduler import Waker
from responder.engine.work import WorkDone, case_work
from responder.logging import get_logger
from responder.metrics import CHANNEL_FAILOVERS, CONTACT_FLAGS, STEP_LATENESS
from responder.oncall.roster import Roster
from responder.paging.contacts import STOP_REASON, clear_flag, load_flags, meaning_of, set_flag
from responder.paging.handoff import queue_handoffs
from responder.paging.messages import PageFacts, language_of, sms_line
from responder.paging.outbox import Outbox
from responder.settings import PersonConfig
from responder.store.cases import NewCase
from responder.store.db import Database
from responder.store.due import DueBatch, DueCase, DueWork, NextState, run_due_step
from responder.store.models import Case, Page
from responder.store.queries import (
    ACKNOWLEDGED,
    OPEN,
    add_event,
    due_times,
    event_row,
    insert_pages,
    new_id,
    notice_row,
)

log = get_logger(__name__)

DUE_BATCH = 200
# Cases with due work: the paging chain while open, tasks and re-escalation once accepted.
WORKING = (OPEN, ACKNOWLEDGED)
# On shutdown, how long a tick in progress (and the sends in flight) may take before being cancelled.
STOP_GRACE_S = 15.0


@dataclass(frozen=True)
class StepZero:
    """What step 0 of a new case brings: its timeline events and page rows, and when the engine next
    has work on the case."""

    events: list[dict[str, Any]]
    pages: list[dict[str, Any]]
    next_due_at: datetime | None


def view_of(
    case: Case | DueCase | NewCase, integration: str = "", done: frozenset[str] = frozenset()
) -> CaseView:
    facts = AlertFacts(case.risk_level, case.is_live, case.region, case.language, integration)
    return CaseView(
        case.id,
        case.status,
        case.region,
        case.chain_started_at,
        case.next_step,
        case.skew_s,
        frozenset(case.declined),
        facts,
        done,
    )


class Engine:
    """Runs due steps and the outbox; `kick()` after anything that may have made work due."""

    def __init__(
        self,
        db: Database,
        plans: Mapping[str, Plan],
        roster: Roster,
        clock: Clock,
        sweep_interval_s: float = 5.0,
        stop_grace_s: float = STOP_GRACE_S,
    ) -> None:
        self.db, self.plans, self.roster, self.clock = db, plans, roster, clock
        self.stop_grace_s = stop_grace_s
        self.outbox: Outbox | None = None
        self.waker = Waker(self.kick, sweep_interval_s, sweep=self.sweep, clock=clock)
        # Due times learnt while working. The database is read in full at start, when a timer fires
        # and on sweeps; a kick (an alert, a callback) only adds what its own tick learnt.
        self._hints: list[datetime] = []
        self.integration_names: Mapping[int, str] = {}  # for tier conditions on the platform
        self._full = True
        self._running = False
        self._again = False
        self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.waker.start()
        self.waker.every("outbox-lease", outbox.lease_s / 3, outbox.keep_alive)
        self.kick()

    async def quiesce(self) -> bool:
        """Before the HTTP site closes: decide nothing new, claim nothing new, let the sends in flight
        finish and be recorded (their callbacks still come in meanwhile). True when all finished."""
        self._stopped = True
        self.waker.shutdown()
        return await self.outbox.quiesce(self.stop_grace_s) if self.outbox is not None else True

    async def stop(self) -> None:
        """Let a running tick finish its transaction (cancelling one mid-way strands its connection)."""
        self._stopped = True
        self.waker.shutdown()
        if self.outbox is not None:
            await self.outbox.stop(self.stop_grace_s)
        late: set[asyncio.Task[None]] = set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self.stop_grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def settled(self) -> None:
        """Wait until no tick and no send is under way: what the engine did so far has set its next
        wake-ups (a test fast-forwarding the clock moves it on only then)."""
        while busy := self._tasks | (self.outbox.in_flight() if self.outbox is not None else set()):
            await asyncio.gather(*busy, return_exceptions=True)

    def note_due(self, when: datetime | None) -> None:
        """A tick learnt that work is due at `when`; the wake-up is set once the tick ends."""
        if when is not None:
            self._hints.append(when)

    def wake_at(self, when: datetime) -> None:
        """Work outside a tick became due at `when` (an outbox retry): wake up for it."""
        if not self._stopped:
            self.waker.wake_at(when)

    def sweep(self) -> None:
        """The safety sweep: re-read every due time from the database (other replicas, stale claims)."""
        self._full = True
        self.kick()

    def kick(self) -> None:
        """Run a tick soon, without waiting for it."""
        if self._stopped:
            return
        task = asyncio.create_task(self.tick())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tick(self) -> None:
        """Act on every due step, send the outbox, and set the next wake-up; never runs twice at once."""
        if self._running:
            self._again = True
            return
        self._running = True
        try:
            while not self._stopped:
                self._again = False
                # The outbox sends in the background from the first batch on: the first pages must
                # not wait for the last steps to be decided, nor those for Twilio.
                while True:
                    handled = await self._run_due()
                    if self.outbox is not None:
                        self.outbox.kick()
                    if handled < DUE_BATCH:
                        break
                if self._full:
                    self._full = False
                    await self._reschedule()
                elif self._hints:
                    self.waker.wake_at(min(self._hints))
                    self._hints.clear()
                # A kick that came in while we were awaiting anything above set _again: go round.
                if not self._again:
                    break
        except Exception:
            log.exception("engine_tick_failed")
            self._full = True  # read everything again on the retry
            if not self._stopped:
                self.waker.wake_at(self.clock.now() + timedelta(seconds=1))
        finally:
            self._running = False

    async def _run_due(self) -> int:
        """One batch of cases with work due: loaded, decided (pure), written, in one transaction."""
        now = self.clock.now()
        return await run_due_step(self.db, WORKING, now, DUE_BATCH, lambda batch: self._decide(batch, now))

    def _decide(self, batch: DueBatch, now: datetime) -> DueWork:
        """What the batch's due work comes to: each open case's step, each accepted case's case work."""
        work = DueWork()
        for case in batch.cases:
            plan = self.plans[case.playbook]
            if case.status == OPEN:
                done = self._step(case, plan, batch.done.get(case.id, frozenset()), now)
            else:
                done = case_work(case, batch.tasks.get(case.id, []), plan, self.roster, now)
            work.pages += done.pages
            work.events += done.events
            work.states.append(done.state)
            work.overdue += [(case.id, task) for task in done.overdue]
            self.note_due(done.state.next_due_at)
        return work

    def _step(self, case: DueCase, plan: Plan, done: frozenset[str], now: datetime) -> WorkDone:
        """The due step of an open case's chain: its events, its pages and where the chain goes next."""
        if case.next_due_at is not None:
            STEP_LATENESS.observe(max(0.0, (now - case.next_due_at).total_seconds()))
        view = view_of(case, self.integration_names.get(case.integration_id, ""), done)
        decision = next_actions(view, plan, self.roster, now)
        log.info("steps_fired", case_id=case.id, pages=len(decision.pages), next_step=decision.next_step)
        facts = PageFacts(case.ref, case.risk_level, case.region)
        return WorkDone(
            self._page_rows(case.id, facts, decision, now),
            [event_row(case.id, e.type, "engine", now, e.detail) for e in decision.events],
            NextState(case.id, decision.next_step, decision.next_due_at, decision.skew_s, case.quiet_stage),
        )

    def step_zero(self, case: NewCase, integration: str, now: datetime) -> StepZero:
        """Step 0 of a case not yet stored, decided at intake (it is known there: due at once). The
        case's next step and due time are set on it; its events and page rows go in the intake's own
        transaction, and the rows straight to the sender (the engine acts on the later steps)."""
        decision = next_actions(view_of(case, integration), self.plans[case.playbook], self.roster, now)
        STEP_LATENESS.observe(0.0)
        events = [event_row(case.id, e.type, "engine", now, e.detail) for e in decision.events]
        case.next_step, case.next_due_at, case.skew_s = (
            decision.next_step,
            decision.next_due_at,
            decision.skew_s,
        )
        pages = self._page_rows(case.id, PageFacts(case.ref, case.risk_level, case.region), decision, now)
        return StepZero(events, pages, decision.next_due_at)

    def _page_rows(
        self, case_id: str, facts: PageFacts, decision: Decision, now: datetime
    ) -> list[dict[str, Any]]:
        """The page rows of a decision on a case."""
        return [
            {
                "id": new_id(),
                "case_id": case_id,
                "person_id": p.person_id,
                "channel": p.channel,
                "purpose": p.purpose,
                "step": p.step,
                "tier": p.tier,
                "body": self._notice_text(p.person_id, p.notice, facts) if p.notice else "",
                "status": "pending",
                "created_at": now,
                "not_before": now,
                "updated_at": now,
            }
            for p in decision.pages
        ]

    async def _reschedule(self) -> None:
        """Set the next wake-up from the database; pages due now go to the outbox, not to the timer."""
        async with self.db.transaction() as session:
            case_due, page_due, oldest_claim = await due_times(session)
        now, candidates = self.clock.now(), [case_due]
        if page_due is not None and page_due <= now and self.outbox is not None:
            self.outbox.kick()  # pages left from before a restart, or from another replica
        elif page_due is not None:
            candidates.append(page_due)  # a retry after backoff
        if self.outbox is not None and oldest_claim is not None:
            # Claims of a process that died come back once its lease runs out: look again then.
            reclaimed, next_expiry = await self.outbox.reclaim_orphans()
            if reclaimed:
                self.outbox.kick()
            if next_expiry is not None:  # a wall time, as leases are: a sweep on the lease clock
                lease_clock = self.outbox.lease_clock
                soonest = lease_clock.now() + timedelta(seconds=0.1)  # not again at once
                self.waker.sweep_at(lease_clock, max(next_expiry, soonest))
        when = min((t for t in candidates if t is not None), default=None)
        if when is not None:
            self.waker.wake_at(when)

    async def reconcile(self, after_s: float) -> None:
        """Ask Twilio about pages it has said nothing more of for `after_s` (a lost callback)."""
        if self.outbox is not None:
            await self.outbox.reconcile(after_s)

    async def hand_offs(self, since: datetime, now: datetime) -> None:
        """The hand-off SMS of every turn that started in (since, now], as outbox rows sent at once."""
        if self.outbox is not None and await queue_handoffs(self.db, self.roster, since, now):
            self.outbox.kick()

    async def refresh_flags(self) -> None:
        """Copy the contact flags from the database into the roster."""
        async with self.db.sessions() as session:
            self.roster.set_flags(await load_flags(session))

    async def page_failed(
        self, case_id: str | None, page_id: str, reason: str, error_code: int | None = None
    ) -> None:
        """A page (or notice) failed. Flag the channel if the error code says it is dead for that number
        (and tell the manager), then try the person's next untried channel at once; only when they have
        none left does the chain move on to the next step."""
        if case_id is None:
            # A notice about no case (a hand-off SMS): nothing to fail over; its row says it failed.
            log.warning("notice_failed", page_id=page_id, reason=reason)
            return
        now, meaning = self.clock.now(), meaning_of(error_code)
        async with self.db.transaction() as session:
            page = await session.get(Page, page_id)
            case = await session.get(Case, case_id, with_for_update=True)
            person = self.roster.person(page.person_id) if page is not None else None
            if page is None or case is None or person is None:
                return
            tried = await self._channels_tried(session, case_id, person.id)
            then = after_failure(
                page.purpose,
                case.status == OPEN,
                page.channel,
                page.step,
                meaning,
                self.roster.usable_channels(person),
                tried,
            )
            flagged = None
            if then.flag is not None and meaning is not None:
                new = await set_flag(
                    session,
                    self.db.is_sqlite,
                    person.id,
                    then.flag,
                    meaning.reason,
                    error_code,
                    "twilio",
                    now,
                )
                if new:
                    flagged = then.flag
                    CONTACT_FLAGS.labels(then.flag).inc()
                    await self.tell_managers(session, case, person, meaning.reason, now)
            if then.retry_on is not None:
                await insert_pages(session, [self._page_row(case.id, person.id, then.retry_on, page, now)])
                detail = {"page": page_id, "person": person.id, "from": page.channel, "to": then.retry_on}
                add_event(session, case.id, "channel_failover", "engine", now, {**detail, "reason": reason})
        if flagged is not None:
            await self.refresh_flags()  # after the commit: the roster never holds a flag the database lacks
        if then.retry_on is not None:
            CHANNEL_FAILOVERS.labels(then.retry_on).inc()
            log.info("channel_failover", case_id=case_id, page_id=page_id, to=then.retry_on, reason=reason)
            if self.outbox is not None:
                self.outbox.kick()
        elif then.advance:
            await self.fail_over(case_id, page_id, reason)

    async def _channels_tried(self, session: AsyncSession, case_id: str, person_id: str) -> set[str]:
        """The channels this person was paged on for this case."""
        rows = await session.execute(
            select(col(Page.channel)).where(
                col(Page.case_id) == case_id, col(Page.person_id) == person_id, col(Page.purpose) == "page"
            )
        )
        return set(rows.scalars())

    async def opt_out(self, person_id: str, stop: bool) -> None:
        """STOP: SMS to this person is flagged (voice takes over) and the managers are told, on the
        timeline of the person's latest case when there is one. START: the flag goes."""
        now = self.clock.now()
        person = self.roster.person(person_id)
        if person is None:
            return
        if not stop:
            async with self.db.transaction() as session:
                cleared = await clear_flag(session, person_id, "sms")
            await self.refresh_flags()
            if cleared:
                log.info("contact_opted_in", person_id=person_id)
            return
        async with self.db.transaction() as session:
            new = await set_flag(
                session, self.db.is_sqlite, person_id, "sms", STOP_REASON, None, f"person:{person_id}", now
            )
            if not new:
                return
            CONTACT_FLAGS.labels("sms").inc()
            latest = (
                await session.execute(
                    select(Case)
                    .join(Page, col(Page.case_id) == col(Case.id))
                    .where(col(Page.person_id) == person_id)
                    .order_by(col(Page.created_at).desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            if latest is not None:
                await self.tell_managers(session, latest, person, STOP_REASON, now)
            else:
                # No case to hang the notice on: a notice about no case, sent by the outbox all the same.
                await insert_pages(session, self._caseless_manager_notices(person, now))
        await self.refresh_flags()
        log.warning("contact_opted_out", person_id=person_id, case_id=latest.id if latest else None)
        if self.outbox is not None:
            self.outbox.kick()

    def _caseless_manager_notices(self, person: PersonConfig, now: datetime) -> list[dict[str, Any]]:
        rows = []
        for manager in self.roster.everyone_on_call("manager", None, now):
            channel = self.roster.channel_for(manager, "sms")
            if channel is None or manager.id == person.id:
                continue
            lang = language_of(manager.languages)
            text = sms_line("contact_flagged", None, lang=lang, holder=person.name, task=STOP_REASON)
            rows.append(notice_row(None, manager.id, text, now, channel))
        return rows

    @staticmethod
    def _page_row(case_id: str, person_id: str, channel: str, failed: Page, now: datetime) -> dict[str, Any]:
        return {
            "id": new_id(),
            "case_id": case_id,
            "person_id": person_id,
            "channel": channel,
            "purpose": "page",
            "step": failed.step,
            "tier": failed.tier,
            "body": "",
            "status": "pending",
            "created_at": now,
            "not_before": now,
            "updated_at": now,
        }

    async def tell_managers(
        self, session: AsyncSession, case: Case, person: PersonConfig, why: str, now: datetime
    ) -> None:
        """An SMS notice to the on-call managers that someone's channel is dead, on the case's timeline."""
        facts = PageFacts(case.ref, case.risk_level, case.region)
        rows = []
        for manager in self.roster.everyone_on_call("manager", case.region, now):
            channel = self.roster.channel_for(manager, "sms")
            if channel is None or manager.id == person.id:
                continue
            lang = language_of(manager.languages)
            text = sms_line("contact_flagged", facts, lang=lang, holder=person.name, task=why)
            rows.append(notice_row(case.id, manager.id, text, now, channel))
        await insert_pages(session, rows)
        add_event(
            session,
            case.id,
            "contact_flagged",
            "twilio",
            now,
            {"person": person.id, "reason": why, "managers_told": [r["person_id"] for r in rows]},
        )

    async def fail_over(self, case_id: str, page_id: str, reason: str) -> None:
        """A page failed or was passed: move the chain to its next step now, not at the ack timeout.

        Only news about the latest step counts: a late failure of an earlier tier's page must not cut
        short the wait of the tier being paged now.
        """
        now = self.clock.now()
        async with self.db.transaction() as session:
            case = await session.get(Case, case_id, with_for_update=True)
            if case is None or case.status != OPEN:
                return
            page = await session.get(Page, page_id)
            latest = (
                await session.execute(
                    select(func.max(col(Page.step))).where(
                        col(Page.case_id) == case_id, col(Page.purpose) == "page"
                    )
                )
            ).scalar()
            if page is None or not cuts_the_wait_short(page.step, latest):
                add_event(
                    session, case.id, "late_failure_noted", "engine", now, {"page": page_id, "reason": reason}
                )
                return
            plan = self.plans[case.playbook]
            case.skew_s = pull_forward(view_of(case), plan, now)
            case.next_due_at = min(case.next_due_at or now, now)
            add_event(
                session, case.id, "escalation_advanced", "engine", now, {"page": page_id, "reason": reason}
            )
        log.info("escalation_advanced", case_id=case_id, page_id=page_id, reason=reason)
        self.kick()

    async def react(self, case_id: str, news: tuple[str, ...]) -> None:
        """An update or retract arrived: apply the playbook's reactions (re-page, notices)."""
        if not news:
            return
        now = self.clock.now()
        async with self.db.transaction() as session:
            case = await session.get(Case, case_id, with_for_update=True)
            if case is None or case.status not in (OPEN, "acknowledged"):
                return
            plan = self.plans[case.playbook]
            reaction = react(
                list(news),
                plan.playbook.reactions,
                case.status,
                case.region,
                case.accepted_by,
                self.roster,
                now,
            )
            if reaction.repage:
                case.skew_s = pull_forward(view_of(case), plan, now)
                case.next_due_at = min(case.next_due_at or now, now)
            facts = PageFacts(case.ref, case.risk_level, case.region)
            rows = [
                notice_row(case.id, person_id, self._notice_text(person_id, kind, facts), now)
                for kind in news
                for person_id in reaction.notify
            ]
            await insert_pages(session, rows)
            add_event(
                session,
                case.id,
                "reaction",
                "engine",
                now,
                {"news": list(news), "repage": reaction.repage, "notified": reaction.notify},
            )
        log.info("reaction_applied", case_id=case_id, news=list(news), repage=reaction.repage)
        self.kick()

    def _notice_text(self, person_id: str, kind: str, facts: PageFacts) -> str:
        person = self.roster.person(person_id)
        return sms_line(kind, facts, lang=language_of(person.languages if person else ()))
