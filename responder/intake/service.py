"""Taking an alert in: create the case (or recognise a repeat), record updates and retracts."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from responder.clock import Clock
from responder.engine.playbook import AlertFacts, Playbook
from responder.engine.work import task_rows
from responder.errors import NotFound
from responder.intake.pseudonyms import Pseudonyms
from responder.intake.schema import Alert
from responder.store import onehop
from responder.store.cases import PERSONAL, NewCase
from responder.store.db import Database
from responder.store.models import Case, CaseEvent, CaseTask, Delivery
from responder.store.queries import INSERT_EVENT, add_event, event_row, new_id
from responder.store.sealed import for_case

# Case references people type in SMS replies: no 0/O, 1/I/L, 2/Z, 5/S, 8/B look-alikes.
REF_ALPHABET = "ACDEFHJKMNPRTUVWXY34679"
REF_LENGTH = 5
_INSERT_CASE = insert(Case)
_INSERT_TASKS = insert(CaseTask)
_CASE_ROW = onehop.Prepared(Case)
_EVENT_ROW = onehop.Prepared(CaseEvent)
_TASK_ROW = onehop.Prepared(CaseTask)
_RISK_PRIORITY = {"imminent": 0, "high": 2, "medium": 4, "low": 6}


class FirstStep(Protocol):
    """Step 0 of a new case, done in the intake's transaction (engine/commands.py gives one)."""

    def decide(self, case: NewCase, integration: str, now: datetime) -> list[dict[str, Any]]:
        """Decide step 0 (setting the case's next step on it); returns its timeline events."""
        ...

    async def write(self, conn: AsyncConnection, case: NewCase, now: datetime) -> None:
        """Write step 0's pages, in the transaction that stores the case."""
        ...

    def hop(self, case: NewCase, now: datetime) -> PagesWriter | None:
        """On SQLite: step 0's pages, to be written on the database thread in the intake's one hop
        (None: use write() instead)."""
        ...


class PagesWriter(Protocol):
    def write(self, db: sqlite3.Connection) -> None: ...


@dataclass(frozen=True)
class IntakeResult:
    case_id: str
    status: str
    duplicate: bool
    news: tuple[str, ...] = ()  # what an update or retract brought: went_live, new_location, retract


def new_ref() -> str:
    return "".join(secrets.choice(REF_ALPHABET) for _ in range(REF_LENGTH))


def priority_of(alert: Alert) -> int:
    """0 is most urgent; live content comes before the same risk level not live."""
    return _RISK_PRIORITY[alert.risk.level] - (1 if alert.is_live else 0)


def choose_playbook(playbooks: Sequence[Playbook], alert: Alert, integration: str) -> Playbook:
    """The first non-default playbook whose rules all match, else the default."""
    facts = AlertFacts(alert.risk.level, alert.is_live, alert.best_region(), alert.language, integration)
    return next((p for p in playbooks if not p.default and p.match.holds(facts)), None) or next(
        p for p in playbooks if p.default
    )


class Intake:
    """Turns verified alerts into cases; the engine is kicked by the caller afterwards."""

    def __init__(
        self,
        db: Database,
        playbooks: Sequence[Playbook],
        integration_ids: Mapping[str, int],
        clock: Clock,
        pseudonyms: Pseudonyms | None = None,
    ) -> None:
        self.db, self.playbooks, self.integration_ids, self.clock = db, playbooks, integration_ids, clock
        self.pseudonyms = pseudonyms  # None: cases get no subject key (a benchmark's seeder)

    async def receive(
        self, integration: str, webhook_id: str, alert: Alert, first: FirstStep | None = None
    ) -> IntakeResult:
        """Store the alert; a new case's step 0 is decided and written in the same transaction when
        `first` is given (else the engine does it on its next tick)."""
        integration_id = self.integration_ids[integration]
        for _ in range(3):  # a clash of random case references is retried with a new one
            try:
                if alert.event == "new":
                    return await self._new(integration, integration_id, alert, first)
                return await self._follow_up(integration, integration_id, webhook_id, alert)
            except IntegrityError:
                continue
        raise RuntimeError("could not store the alert after 3 tries")

    async def _existing(self, session: AsyncSession, integration_id: int, alert_id: str) -> Case | None:
        return (
            await session.execute(
                select(Case)
                .options(*PERSONAL)  # an update is folded into the alert
                .where(col(Case.integration_id) == integration_id, col(Case.alert_id) == alert_id)
            )
        ).scalar_one_or_none()

    async def _new(
        self, integration: str, integration_id: int, alert: Alert, first: FirstStep | None
    ) -> IntakeResult:
        """Insert first and look for a repeat only when the unique key says so (repeats are rare)."""
        try:
            if self.db.is_sqlite:
                return await self._new_in_one_hop(integration, integration_id, alert, first)
            async with self.db.engine.begin() as conn:
                case = self._build(integration, integration_id, alert)
                events = [self._received(integration, case, alert)]
                if first is not None:
                    events += first.decide(case, integration, case.received_at)
                await conn.execute(_INSERT_CASE, [case.row()])
                await conn.execute(INSERT_EVENT, events)
                if tasks := self._tasks(case):
                    await conn.execute(_INSERT_TASKS, tasks)
                if first is not None:
                    await first.write(conn, case, case.received_at)
            return IntakeResult(case.id, case.status, duplicate=False)
        except IntegrityError:
            async with self.db.sessions() as session:
                existing = await self._existing(session, integration_id, alert.alert_id)
            if existing is None:
                raise  # a clash of case references: receive() tries again with a new one
            return IntakeResult(existing.id, existing.status, duplicate=True)

    async def _new_in_one_hop(
        self, integration: str, integration_id: int, alert: Alert, first: FirstStep | None
    ) -> IntakeResult:
        """The same transaction on SQLite, in one hop to the database thread (store/onehop.py)."""
        case = self._build(integration, integration_id, alert)
        events = [self._received(integration, case, alert)]
        if first is not None:
            events += first.decide(case, integration, case.received_at)
        row, tasks = case.row(), self._tasks(case)
        pages = first.hop(case, case.received_at) if first is not None else None

        def write(db: sqlite3.Connection) -> None:
            _CASE_ROW.run(db, [row])
            _EVENT_ROW.run(db, events)
            _TASK_ROW.run(db, tasks)
            if pages is not None:
                pages.write(db)

        async with self.db.engine.connect() as conn:
            if pages is None and first is not None:  # no outbox: the pages go in through SQLAlchemy
                async with conn.begin():
                    await conn.execute(_INSERT_CASE, [row])
                    await conn.execute(INSERT_EVENT, events)
                    if tasks:
                        await conn.execute(_INSERT_TASKS, tasks)
                    await first.write(conn, case, case.received_at)
            else:
                await onehop.transaction(conn, write)
        return IntakeResult(case.id, case.status, duplicate=False)

    def _build(self, integration: str, integration_id: int, alert: Alert) -> NewCase:
        now = self.clock.now()
        playbook = choose_playbook(self.playbooks, alert, integration)
        case_id = new_id()
        return NewCase(
            id=case_id,
            ref=new_ref(),
            integration_id=integration_id,
            alert_id=alert.alert_id,
            risk_level=alert.risk.level,
            priority=priority_of(alert),
            is_live=alert.is_live,
            region=alert.best_region(),
            language=alert.language,
            playbook=playbook.name,
            alert=for_case(case_id, alert.stored()),
            detected_at=alert.detected_at,
            received_at=now,
            chain_started_at=now,
            next_due_at=now,
            subject_key=self._subject_key(integration, alert),
        )

    def _subject_key(self, integration: str, alert: Alert) -> str | None:
        if self.pseudonyms is None or alert.subject is None:
            return None
        return self.pseudonyms.of(integration, alert.subject.account_id)

    def _received(self, integration: str, case: NewCase, alert: Alert) -> dict[str, Any]:
        detail = {
            "risk_level": alert.risk.level,
            "is_live": alert.is_live,
            "region": case.region,
            "playbook": case.playbook,
            "detected_at": alert.detected_at.isoformat(),
        }
        return event_row(case.id, "alert_received", f"platform:{integration}", case.received_at, detail)

    def _create(self, session: AsyncSession, integration: str, integration_id: int, alert: Alert) -> Case:
        new = self._build(integration, integration_id, alert)
        case = Case(**new.row())
        session.add(case)
        session.add(CaseEvent(**self._received(integration, new, alert)))
        for row in self._tasks(new):
            session.add(CaseTask(**row))
        return case

    def _tasks(self, case: NewCase) -> list[dict[str, Any]]:
        playbook = next(p for p in self.playbooks if p.name == case.playbook)
        return task_rows(case.id, playbook, case.received_at)

    async def _follow_up(
        self, integration: str, integration_id: int, webhook_id: str, alert: Alert
    ) -> IntakeResult:
        async with self.db.transaction() as session:
            seen = (
                await session.execute(
                    select(Delivery).where(
                        col(Delivery.integration_id) == integration_id,
                        col(Delivery.webhook_id) == webhook_id,
                    )
                )
            ).scalar_one_or_none()
            if seen is not None:
                case = await session.get(Case, seen.case_id)
                assert case is not None
                return IntakeResult(case.id, case.status, duplicate=True)
            case = await self._existing(session, integration_id, alert.alert_id)
            if case is None and alert.event == "retract":
                raise NotFound([{"field": "alert_id", "message": "no case for this alert_id to retract"}])
            if case is None:
                # An update whose original never arrived is still an alert: never drop it.
                case = self._create(session, integration, integration_id, alert)
                add_event(
                    session, case.id, "update_without_original", f"platform:{integration}", self.clock.now()
                )
                news: tuple[str, ...] = ()
            else:
                news = self._merge(session, integration, case, alert)
            await session.flush()
            session.add(
                Delivery(
                    integration_id=integration_id,
                    webhook_id=webhook_id,
                    case_id=case.id,
                    received_at=self.clock.now(),
                )
            )
        return IntakeResult(case.id, case.status, duplicate=False, news=news)

    def _merge(self, session: AsyncSession, integration: str, case: Case, alert: Alert) -> tuple[str, ...]:
        """Fold an update into the case (or note a retract); returns the news for the reactions."""
        now = self.clock.now()
        actor = f"platform:{integration}"
        if alert.event == "retract":
            # A retract asks people to review; it never stops paging by itself.
            add_event(session, case.id, "retract_requested", actor, now, {"risk_level": alert.risk.level})
            return ("retract",)
        raw, merged = alert.stored(), dict(case.alert)
        hints = list(merged.get("location_hints") or []) + list(raw.get("location_hints") or [])
        merged["location_hints"] = hints
        for key in ("content", "platform_contact", "subject"):
            if raw.get(key):
                merged[key] = {**(merged.get(key) or {}), **raw[key]}
        merged["risk"] = raw.get("risk", merged.get("risk"))
        case.alert = for_case(case.id, merged)
        case.subject_key = case.subject_key or self._subject_key(integration, alert)
        became_live = alert.is_live and not case.is_live
        case.is_live = case.is_live or alert.is_live
        case.priority = min(case.priority, priority_of(alert))
        add_event(
            session,
            case.id,
            "alert_updated",
            actor,
            now,
            {
                "new_location_hints": len(raw.get("location_hints") or []),
                "became_live": became_live,
                "risk_level": alert.risk.level,
            },
        )
        news = ("went_live",) if became_live else ()
        return news + (("new_location",) if raw.get("location_hints") else ())
