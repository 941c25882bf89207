"""Case commands: the only thing HTTP handlers call to change a case.

A handler parses its request, calls one command, and renders the answer. A command does its
transaction and schedules what follows itself (a wake of the engine, a failover, the next page): no
handler remembers to kick the engine, and no rule of what follows an accept or a failed page is
written in a handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from responder.clock import Clock
from responder.engine import acceptance
from responder.engine.acceptance import AcceptResult
from responder.engine.runner import Engine, StepZero
from responder.intake.schema import Alert
from responder.intake.service import Intake, IntakeResult
from responder.logging import get_logger
from responder.oncall.roster import Roster
from responder.paging import inbound
from responder.paging.messages import PageFacts
from responder.paging.outbox import Claimed, NewPages
from responder.store.cases import NewCase
from responder.store.db import Database, within
from responder.store.models import Case, Page
from responder.store.queries import ACKNOWLEDGED, insert_page_rows

log = get_logger(__name__)
# What a person's accept came to, for the answer on their channel.
Accepted = Literal["accepted", "taken", "closed"]


@dataclass(frozen=True)
class AcceptAnswer:
    result: AcceptResult

    @property
    def came_to(self) -> Accepted:
        if self.result.won:
            return "accepted"
        return "taken" if self.result.status == ACKNOWLEDGED else "closed"


class _FirstPages:
    """Step 0 of a new case at intake: decided by the engine, its pages written in the intake's
    transaction and claimed there for this process's outbox, sent once that commits."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.step: StepZero | None = None
        self._claimed: list[Claimed] = []
        self._hop: NewPages | None = None

    def decide(self, case: NewCase, integration: str, now: datetime) -> list[dict[str, Any]]:
        self.step = self._engine.step_zero(case, integration, now)
        return self.step.events

    async def write(self, conn: AsyncConnection, case: NewCase, now: datetime) -> None:
        assert self.step is not None
        outbox = self._engine.outbox
        if outbox is None:
            await insert_page_rows(conn, self.step.pages)
            return
        facts = PageFacts(case.ref, case.risk_level, case.region)
        self._claimed = await outbox.take_new(conn, self.step.pages, facts, now)
        if len(self._claimed) < len(self.step.pages):
            self._claimed = []  # left pending (flood rule, no free slot): the drain sends them

    def hop(self, case: NewCase, now: datetime) -> NewPages | None:
        """The pages for a one-hop intake on SQLite (None: no outbox, take the other path)."""
        assert self.step is not None
        outbox = self._engine.outbox
        if outbox is None:
            return None
        self._hop = outbox.hop(self.step.pages, PageFacts(case.ref, case.risk_level, case.region), now)
        return self._hop

    def sent(self) -> None:
        assert self.step is not None
        if self._hop is not None:
            self._claimed = self._hop.claimed() if self._hop.took else []
        outbox = self._engine.outbox
        if outbox is not None:
            if self._claimed:
                outbox.start(self._claimed)
            else:
                outbox.kick()
        if self.step.next_due_at is not None:
            self._engine.wake_at(self.step.next_due_at)


class CaseCommands:
    """Accept, pass, delivery reports, failures, opt-outs, resolve, tasks and notes."""

    def __init__(self, db: Database, roster: Roster, engine: Engine, intake: Intake, clock: Clock) -> None:
        self._db, self._roster, self._engine, self._clock = db, roster, engine, clock
        self._intake = intake
        self._statuses = inbound.StatusRecorder(db)

    def now(self) -> datetime:
        return self._clock.now()

    async def accept(self, case_id: str, person_id: str, via: str) -> AcceptAnswer:
        """The first accept wins, atomically; the engine then stops paging and tells the others."""
        result = await acceptance.accept(self._db, self._roster, case_id, person_id, via, self.now())
        self._engine.kick()
        return AcceptAnswer(result)

    async def accept_by_link(self, page: Page) -> AcceptAnswer | None:
        """The one-time link of a page, used: an accept by its person. None when it was used before."""
        if page.case_id is None or not await inbound.use_link(self._db, page.id, self.now()):
            return None
        return await self.accept(page.case_id, page.person_id, "link")

    async def receive_alert(
        self, integration: str, webhook_id: str, alert: Alert, deadline_s: float
    ) -> IntakeResult:
        """An alert from a platform, stored within `deadline_s` (past it: Unavailable, nothing lost:
        the platform resends, and a repeat is recognised), then acted on."""
        first = _FirstPages(self._engine)
        result = await within(deadline_s, self._intake.receive(integration, webhook_id, alert, first))
        if first.step is not None and not result.duplicate:
            # Step 0 was done in the intake's transaction: its pages go to Twilio now, and the engine
            # wakes when the next step is due (it has nothing to do before).
            first.sent()
            return result
        if not result.duplicate:
            try:
                await self.alert_stored(result.case_id, result.news)
            except Exception:
                # Stored is stored: the answer stays 202 (a 5xx would make the platform resend).
                log.exception("reaction_failed", case_id=result.case_id, news=list(result.news))
        return result

    async def pass_page(self, case_id: str, page_id: str, person_id: str, via: str, why: str) -> bool:
        """A person passes their page: the chain moves on to the next person at once. False when the
        case is no longer open (nothing to pass)."""
        if not await acceptance.record_pass(self._db, case_id, page_id, person_id, via, self.now()):
            return False
        await self._engine.fail_over(case_id, page_id, why)
        return True

    async def delivery_report(
        self,
        page_id: str,
        status: str,
        error_code: str | None,
        answered_by: str | None,
        sequence: int | None,
        carries: bool = False,
    ) -> None:
        """Twilio's news of a page (and of the pages one combined SMS carried): a failure moves the
        chain on (the next channel, the next person)."""
        riders = await inbound.riders_of(self._db, page_id) if carries else []
        for each in (page_id, *riders):
            news = await self._statuses.record(each, status, error_code, answered_by, sequence, self.now())
            if news is not None and news.failed:
                await self._engine.page_failed(news.case_id, news.page_id, news.reason, news.error_code)

    async def machine_answered(self, case: Case, page_id: str, answered_by: str | None) -> None:
        """Voicemail is never an acknowledgement: recorded once (like a callback saying so), and the
        chain moves on."""
        news = await inbound.record_status(
            self._db, page_id, "in-progress", None, answered_by, None, self.now()
        )
        if news is not None and news.failed:
            await self._engine.page_failed(case.id, page_id, news.reason)

    async def no_key_pressed(self, case_id: str, page_id: str) -> None:
        """The menu played to its end with no key: the call counts as not answered."""
        if await inbound.note_no_input(self._db, page_id, self.now()):
            await self._engine.page_failed(case_id, page_id, "no key pressed")

    async def opt_out(self, person_id: str, stop: bool) -> None:
        """STOP or START from a person's phone."""
        await self._engine.opt_out(person_id, stop)

    async def alert_stored(self, case_id: str, news: tuple[str, ...]) -> None:
        """An alert was stored (new, or news about a case): react, then let the engine act on it."""
        try:
            await self._engine.react(case_id, news)
        finally:
            self._engine.kick()

    async def resolve(
        self,
        case_id: str,
        outcome: str,
        note: str | None,
        actor: str,
        details: dict[str, Any] | None = None,
    ) -> Case:
        """Close a case with an outcome; paging stops for good (pending pages are cancelled)."""
        case = await acceptance.resolve(self._db, case_id, outcome, note, actor, self.now(), details)
        self._engine.kick()
        return case

    async def task_done(self, case_id: str, task: str, actor: str) -> None:
        """Tick a task: it is activity, which resets the re-escalation clock."""
        await acceptance.complete_task(self._db, case_id, task, actor, self.now())
        self._engine.kick()

    async def note(self, case_id: str, text: str, actor: str) -> None:
        """A note on the timeline: activity too."""
        await acceptance.add_note(self._db, case_id, text, actor, self.now())
        self._engine.kick()
