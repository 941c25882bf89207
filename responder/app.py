"""The aiohttp application: one cleanup context per resource, started in order, stopped in reverse."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from aiohttp import web
from aiohttp.typedefs import Middleware
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from responder.accounts.login_limit import flush_bursts
from responder.api import alerts, cases, health, links, review, schedules, twilio_hooks
from responder.api.forwarded import forwarded_middleware
from responder.api.keys import (
    CLOCK,
    COMMANDS,
    DB,
    ENGINE,
    ICAL_SECRET,
    INTAKE,
    LINKS,
    PLAYBOOKS,
    ROSTER,
    SETTINGS,
    TWILIO_CHECKER,
    VERIFIER,
)
from responder.api.middleware import errors_middleware
from responder.api.schedules import refresh_overrides
from responder.clock import Clock, case_clock
from responder.engine.commands import CaseCommands
from responder.engine.plan import compile_plan
from responder.engine.playbook import Playbook, load_playbooks
from responder.engine.runner import Engine
from responder.errors import ConfigError
from responder.intake.pseudonyms import Pseudonyms
from responder.intake.service import Intake
from responder.intake.signatures import SignatureVerifier
from responder.logging import get_logger
from responder.oncall import store
from responder.oncall.config import load_roster, load_schedules, signature
from responder.oncall.roster import Roster
from responder.paging.handoff import CATCH_UP
from responder.paging.links import LinkSigner
from responder.paging.outbox import Outbox
from responder.paging.throttle import FloodRule
from responder.paging.twilio_client import SignatureChecker, TwilioGateway
from responder.settings import Settings
from responder.store.db import Database
from responder.store.migrate import is_up_to_date
from responder.store.models import Case, Integration, Page, Person
from responder.store.queries import CLAIMED, PENDING
from responder.store.retention import run_retention
from responder.store.sealed import SealError, use_keyring
from responder.web import headers as web_headers
from responder.web import views as web_pages

log = get_logger(__name__)


def check_playbooks(roster: Roster, playbooks: list[Playbook]) -> list[str]:
    """Cross-checks between playbooks and the roster: named people and schedule layers must exist."""
    known = set(roster.people)
    layers = {(s.role, name) for s in roster.schedules for name in s.layer_names()}
    problems = []
    for playbook in playbooks:
        for t, tier in enumerate(playbook.paging.tiers):
            for n, target in enumerate(tier.targets):
                if target.person is not None and target.person not in known:
                    where = playbook.where("paging", "tiers", t, "targets", n, "person")
                    problems.append(f"{where}: unknown person {target.person!r}")
                if target.schedule is not None:
                    schedule = roster.schedule(target.schedule)
                    if schedule is None or target.layer not in schedule.layer_names():
                        where = playbook.where("paging", "tiers", t, "targets", n, "schedule")
                        problems.append(
                            f"{where}: no schedule {target.schedule!r} with a {target.layer!r} layer"
                        )
                if target.role is not None and (target.role, target.layer) not in layers:
                    where = playbook.where("paging", "tiers", t, "targets", n, "layer")
                    problems.append(f"{where}: no schedule has a {target.layer!r} layer for {target.role}")
    return problems


def check_serving(settings: Settings) -> list[str]:
    """What `serve` needs beyond `check`: Twilio credentials and a sender number."""
    env, problems = settings.env, []
    for name, value in (
        ("TWILIO_ACCOUNT_SID", env.twilio_account_sid),
        ("TWILIO_AUTH_TOKEN", env.twilio_auth_token),
        ("RESPONDER_TWILIO_FROM", env.twilio_from),
    ):
        if not value:
            problems.append(
                f"environment {name}: required to page (set it; tests and the demo use the simulator)"
            )
    return problems


def build_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    """The whole service; raises ConfigError when playbooks or Twilio settings are invalid.

    `clock`: the service's time (tests pass a ManualClock); by default the system clock, or the
    scaled clock RESPONDER_TIME_SCALE asks for."""
    playbooks = load_playbooks(settings.env.playbooks_dir)
    roster = load_roster(settings)
    problems = check_serving(settings) + check_playbooks(roster, playbooks)
    if settings.keyring is None:
        problems.append(
            "environment RESPONDER_DATA_KEYS must hold the data keys that seal the person's data "
            "(`responder keys new` prints one)"
        )
    if problems:
        raise ConfigError(problems)
    use_keyring(settings.keyring)
    middlewares: list[Middleware] = [errors_middleware]
    if settings.env.trusted_proxies:  # the client behind them, for the login limit and the audit log
        middlewares.append(forwarded_middleware(settings.env.trusted_proxies))
    app = web.Application(middlewares=middlewares, client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    # One clock for the case timeline (intake, engine, outbox, Twilio callbacks, links, flood windows,
    # backoff), which the demo compresses. Accounts, sessions, login limits and the audit log read it
    # too: at scale 1 (production) it is the system clock, and in a demo or a test it keeps the audit
    # log on the same time line as the cases it records. The Twilio HTTP deadline stays wall seconds
    # (paging/twilio_client.py), and so do the outbox leases (paging/outbox.py).
    env = settings.env
    app[CLOCK] = clock or case_clock(env.time_scale, env.time_scale_start)
    app[PLAYBOOKS] = playbooks
    app[ROSTER] = roster
    app[VERIFIER] = SignatureVerifier(settings.webhook_secrets)
    app[TWILIO_CHECKER] = SignatureChecker(
        [settings.env.twilio_auth_token, settings.env.twilio_secondary_auth_token]
    )
    link_secret = settings.env.link_secret or secrets.token_urlsafe(32)
    if not settings.env.link_secret:
        log.warning("link_secret_generated", hint="set RESPONDER_LINK_SECRET so links survive restarts")
    app[LINKS] = LinkSigner(link_secret)
    app[ICAL_SECRET] = settings.env.ical_secret  # empty: the calendar feeds are off (404)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_engine)
    app.cleanup_ctx.append(_schedules)
    web_pages.setup(app)
    web_headers.setup(app)
    for table in (
        alerts.routes,
        cases.routes,
        health.routes,
        links.routes,
        twilio_hooks.routes,
        schedules.routes,
        review.routes,
    ):
        app.router.add_routes(table)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].env.database_url, app[SETTINGS].env.db_deadline_s)
    try:
        if not await is_up_to_date(db):
            raise ConfigError(["database schema is not up to date: run `responder db upgrade` first"])
        await _check_keys(db)
        ids = await _sync_roster(db, app[SETTINGS], app[CLOCK].now())
    except BaseException:
        await db.close()
        raise
    app[DB] = db
    pseudonyms = Pseudonyms(app[SETTINGS].env.pseudonym_key)
    app[INTAKE] = Intake(db, app[PLAYBOOKS], ids, app[CLOCK], pseudonyms)
    yield
    await db.close()


async def _check_keys(db: Database) -> None:
    """A keyring that cannot open what is stored stops the start, with the key it would need: never a
    service that writes under one key what it cannot read under another."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(col(Case.alert)).order_by(col(Case.received_at).desc()).limit(1))
        try:
            rows.all()  # opened as it is read
        except SealError as exc:
            raise ConfigError([f"environment RESPONDER_DATA_KEYS: {exc}"]) from None


async def _sync_roster(db: Database, settings: Settings, now: datetime) -> dict[str, int]:
    """Mirror integrations and people from the config file into their tables.

    Upserts, so replicas starting at the same moment on one PostgreSQL database do not collide.
    """
    insert = postgresql.insert if not db.is_sqlite else sqlite.insert
    people = [
        {
            "id": p.id,
            "name": p.name,
            "phone": p.phone,
            "languages": list(p.languages),
            "roles": list(p.roles),
            "regions": list(p.regions),
            "active": p.active,
            "updated_at": now,
        }
        for p in settings.config.people
    ]
    async with db.transaction() as session:
        names = [{"name": i.name, "created_at": now} for i in settings.config.integrations]
        await session.execute(
            insert(Integration).values(names).on_conflict_do_nothing(index_elements=["name"])
        )
        upsert = insert(Person).values(people)
        changed = {column: upsert.excluded[column] for column in people[0] if column != "id"}
        await session.execute(upsert.on_conflict_do_update(index_elements=["id"], set_=changed))
        if db.is_sqlite:
            # One process owns a SQLite file: whatever it had claimed before a crash was in flight.
            await session.execute(
                update(Page).where(col(Page.status) == CLAIMED).values(status=PENDING, claimed_by=None)
            )
        rows = (await session.execute(select(Integration))).scalars().all()
    return {row.name: int(row.id) for row in rows if row.id is not None}


async def _schedules(app: web.Application) -> AsyncIterator[None]:
    """API overrides into the roster now, then keep it current: schedule files are reloaded when they
    change (a broken edit is logged and the schedules in force stay), overrides made by another
    replica are picked up on the same beat as the engine's safety sweep. The beat is one more job of
    the one scheduler (engine/scheduler.py), not a timer loop of its own."""
    await refresh_overrides(app)
    app[ENGINE].waker.every("housekeeping", app[SETTINGS].env.sweep_interval_s, Housekeeping(app).run)
    yield


# How often housekeeping looks for the person's data whose retention is over (store/retention.py).
RETENTION_EVERY = timedelta(minutes=10)


class Housekeeping:
    """Once per sweep interval: reload changed schedule files, copy overrides and contact flags made by
    other replicas, audit the refused logins of lock windows that ended, reconcile pages Twilio said
    nothing more about, send hand-off SMS, and redact the person's data whose retention is over."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._seen = signature(app[SETTINGS].schedules_dir)
        self._since = app[CLOCK].now() - CATCH_UP
        self._retention = app[SETTINGS].config.retention.rules()
        self._next_retention = app[CLOCK].now()  # at the first beat, then every RETENTION_EVERY

    async def run(self) -> None:
        app, settings = self._app, self._app[SETTINGS]
        try:
            current = signature(settings.schedules_dir)
            if current != self._seen:
                self._seen = current
                await _reload_schedules(app)
            await refresh_overrides(app)
            await flush_bursts(app[DB], app[CLOCK].now())  # a lock's count is audited when it ends
            await app[ENGINE].refresh_flags()  # STOPs and refused numbers seen by other replicas
            now = app[CLOCK].now()
            await app[ENGINE].reconcile(settings.env.reconcile_after_s)
            await app[ENGINE].hand_offs(self._since, now)
            self._since = now
        except Exception:
            log.exception("schedules_refresh_failed")
        now = app[CLOCK].now()
        if now >= self._next_retention:
            self._next_retention = now + RETENTION_EVERY
            try:
                for done in await run_retention(app[DB], self._retention, now):
                    log.info("case_redacted", case_id=done.case_id, identity=done.identity, notes=done.notes)
            except Exception:
                log.exception("retention_failed")  # tried again at the next beat
                self._next_retention = now


async def _reload_schedules(app: web.Application) -> None:
    settings, roster, now = app[SETTINGS], app[ROSTER], app[CLOCK].now()
    try:
        loaded = load_schedules(settings.schedules_dir, settings.config.people)
    except ConfigError as exc:
        log.error("schedules_reload_refused", problems=exc.problems)
        return
    problems = check_playbooks(Roster(settings.config, loaded), [*app[PLAYBOOKS]])
    if problems:
        log.error("schedules_reload_refused", problems=problems)
        return
    before = {s.id: s for s in roster.configured}
    for schedule in loaded:  # on the timeline before it takes effect
        if before.get(schedule.id) != schedule:
            detail = {"file": schedule._source}
            await store.record(app[DB], schedule.id, "schedule_reloaded", "config", now, detail)
    roster.replace_schedules(loaded)
    log.info("schedules_reloaded", schedules=len(loaded))


async def _engine(app: web.Application) -> AsyncIterator[None]:
    env = app[SETTINGS].env
    plans = {p.name: compile_plan(p) for p in app[PLAYBOOKS]}
    engine = Engine(app[DB], plans, app[ROSTER], app[CLOCK], env.sweep_interval_s, env.stop_grace_s)
    gateway = TwilioGateway(
        env.twilio_account_sid,
        env.twilio_auth_token,
        env.twilio_from,
        env.twilio_api_base,
        env.twilio_timeout_s,
    )
    outbox = Outbox(
        app[DB],
        gateway,
        app[ROSTER],
        app[LINKS],
        env.public_url,
        app[CLOCK],
        engine.page_failed,
        engine.wake_at,
        FloodRule(env.phone_limit, env.phone_limit_window_s, env.phone_limit_hold_s),
        # Renewed three times per lease; long enough to outlast a Twilio request's deadline twice.
        lease_s=max(2 * env.twilio_timeout_s, 6.0),
        outage_notice_s=env.twilio_outage_notice_s,
    )
    await outbox.renew_lease()  # before its first claim
    engine.integration_names = {number: name for name, number in app[INTAKE].integration_ids.items()}
    app[ENGINE] = engine
    app[COMMANDS] = CaseCommands(app[DB], app[ROSTER], engine, app[INTAKE], app[CLOCK])
    await engine.refresh_flags()
    engine.start(outbox)
    log.info("service_started", playbooks=sorted(plans), time_scale=env.time_scale)
    yield
    await engine.stop()
    await gateway.close()
