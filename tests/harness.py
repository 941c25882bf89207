"""The service under test: the real app on a real port, a real database, paging into the phone simulator."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from responder.api.keys import DB, ENGINE
from responder.app import build_app
from responder.clock import Clock, Handle, ManualClock, loop_call_at
from responder.oncall.config import load_schedules
from responder.oncall.roster import Roster
from responder.settings import ConfigFile, Settings, load_settings
from responder.simulator import PhoneSimulator
from responder.simulator.state import WAIT_S as WAIT_S
from responder.store.db import Database
from responder.store.migrate import upgrade
from responder.tools import signed_headers
from responder.yamlfile import load_yaml, validate_doc

ROOT = Path(__file__).resolve().parents[1]
# The sample alerts (fictional people), kept in the repo so a fresh clone is complete.
SAMPLES = ROOT / "tests" / "samples"
ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
# Shared secrets as long as `serve` demands (32 characters at least: responder/secret_checks.py).
API_TOKEN = "test-api-token-0123456789abcdefghij"
LINK_SECRET = "test-link-secret-0123456789abcdefgh"
ICAL_SECRET = "test-ical-secret-0123456789abcdefgh"
# The keyring that seals the person's data (a fixed test key: 32 bytes, base64).
DATA_KEYS = "t1:dGVzdC1kYXRhLWtleS0wMTIzNDU2Nzg5YWJjZGVmZ2g="
SOCIAL_SECRET = "whsec_" + "c29jaWFsLWV4YW1wbGUtc2VjcmV0LWZvci10ZXN0cw=="
FORUM_SECRET = "whsec_" + "Zm9ydW0tZXhhbXBsZS1zZWNyZXQtZm9yLXRlc3Rz"
SERVICE_NUMBER = "+15005550006"
# WAIT_S (30 s, imported above; also the simulator's default for expect_*) bounds a wait for something
# that must happen: only a broken run reaches it. Behaviour tests prove on the case's timeline what
# caused a page, never how fast it came; speed is measured in bench/ (docs/BENCHMARKS.md).


def sample(name: str, **changes: Any) -> dict[str, Any]:
    """A sample alert from shared/samples, with top-level fields changed."""
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    data.update(changes)
    return data


def events(case: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The case's timeline events of one type, oldest first."""
    return [e for e in case["timeline"] if e["type"] == kind]


def at(stamp: str) -> datetime:
    """A timestamp of the case API (ISO 8601, UTC)."""
    return datetime.fromisoformat(stamp)


def due(case: dict[str, Any], minutes: float) -> datetime:
    """When something `minutes` of playbook time after the alert falls due: the playbook's minutes
    are the case clock's, however fast that clock runs (RESPONDER_TIME_SCALE scales the clock)."""
    return at(case["received_at"]) + timedelta(minutes=minutes)


def edited_playbooks(tmp_path: Path, old: str, new: str, name: str = "imminent-risk.yaml") -> Path:
    """A copy of playbooks/ in which `old` (found exactly once in playbook `name`) is replaced by `new`."""
    playbooks = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks", playbooks)
    path = playbooks / name
    text = path.read_text()
    assert text.count(old) == 1, (old, name)
    path.write_text(text.replace(old, new))
    return playbooks


def environment(db_url: str, public_url: str, api_base: str, **extra: str) -> dict[str, str]:
    env = {
        "RESPONDER_CONFIG": str(ROOT / "config" / "responder.yaml"),
        "RESPONDER_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "RESPONDER_DATABASE_URL": db_url,
        "RESPONDER_PUBLIC_URL": public_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "RESPONDER_TWILIO_FROM": SERVICE_NUMBER,
        "RESPONDER_TWILIO_API_BASE": api_base,
        "RESPONDER_API_TOKEN": API_TOKEN,
        "RESPONDER_LINK_SECRET": LINK_SECRET,
        "RESPONDER_ICAL_SECRET": ICAL_SECRET,
        "RESPONDER_DATA_KEYS": DATA_KEYS,
        "RESPONDER_PSEUDONYM_KEY": "test-pseudonym-key-0123456789abcdefgh",
        "RESPONDER_SECRET_SOCIAL_EXAMPLE": SOCIAL_SECRET,
        "RESPONDER_SECRET_FORUM_EXAMPLE": FORUM_SECRET,
        "RESPONDER_TIME_SCALE": "0.01",
        "RESPONDER_PHONE_LIMIT": "0",  # tests page the same people often; test_failover sets it
        "RESPONDER_LOG_FORMAT": "json",
        "RESPONDER_LOG_LEVEL": "warning",
        # The database deadline is a guard against a frozen database, not a speed target: on a busy
        # machine a wait for SQLite's one connection can pass the 5 s default, and the alert would get
        # a 503 the test does not expect. The tests of the deadline set their own.
        "RESPONDER_DB_DEADLINE_S": "30",
    }
    env.update(extra)
    return env


def bound_socket() -> socket.socket:
    """A listening socket on a free loopback port, handed to aiohttp (no pick-then-bind race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Service:
    """A running service plus the phones; methods speak HTTP like the real clients do."""

    url: str
    sim: PhoneSimulator
    settings: Settings
    http: aiohttp.ClientSession
    runner: web.AppRunner | None = None
    sock: socket.socket | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    clock: Clock | None = None  # the service's clock when the test chose one
    # The tasks of the requests being handled now (see stop_service).
    handling: set[asyncio.Task[Any]] = field(default_factory=set)

    async def post_alert(
        self,
        alert: dict[str, Any] | str | bytes,
        secret: str = SOCIAL_SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        body = alert if isinstance(alert, str | bytes) else json.dumps(alert)
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        sent = headers if headers is not None else signed_headers(secret, text)
        async with self.http.post(f"{self.url}/v1/alerts", data=body, headers=sent) as response:
            return response.status, await response.json()

    async def case(self, case_id: str) -> dict[str, Any]:
        async with self.http.get(
            f"{self.url}/v1/cases/{case_id}", headers={"Authorization": f"Bearer {API_TOKEN}"}
        ) as response:
            assert response.status == 200, await response.text()
            data: dict[str, Any] = await response.json()
            return data

    async def resolve(self, case_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"{self.url}/v1/cases/{case_id}/resolve",
            json=body,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as response:
            return response.status, await response.json()

    async def advance(self, minutes: float = 0, seconds: float = 0) -> datetime:
        """Fast-forward the service's ManualClock, one wake-up at a time: the engine works through
        each time it asked for, with the clock reading that time, before the clock moves on. So a
        step falls due, fires and is written at its exact playbook time. Returns the new time."""
        clock, engine = self.clock, self.app[ENGINE]
        assert isinstance(clock, ManualClock), "start the service with clock=ManualClock(...)"
        target = clock.now() + timedelta(minutes=minutes, seconds=seconds)
        await engine.settled()
        while (pending := clock.pending()) and pending[0] <= target:
            clock.advance_to(pending[0])
            await engine.settled()
        clock.advance_to(target)
        await engine.settled()
        return clock.now()

    @property
    def app(self) -> web.Application:
        assert self.runner is not None, "the service has stopped"
        return self.runner.app

    def phone_of(self, person_id: str) -> Any:
        person = self.settings.person(person_id)
        assert person is not None
        return self.sim.phone(person.phone)


async def start_service(
    db_url: str,
    sim: PhoneSimulator,
    http: aiohttp.ClientSession,
    sock: socket.socket | None = None,
    migrate: bool = True,
    clock: Clock | None = None,
    routes: Sequence[web.AbstractRouteDef] = (),
    extra_env: Mapping[str, str] | None = None,
    **extra: str,
) -> Service:
    """Migrate the database and start the real app on a real port; the simulator calls it back.

    `clock`: the service's time (default: the clock RESPONDER_TIME_SCALE selects), e.g. a ManualClock
    that `Service.advance` fast-forwards, or a ShiftedClock.
    `routes`: a test's own handlers besides the app's (one that crashes, say).
    `extra_env`, `extra`: more environment, as a mapping several tests share and as keywords (these win)."""
    sock = sock or bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = load_settings(environment(db_url, url, sim.url, **{**(extra_env or {}), **extra}))
    if migrate:
        db = Database(db_url)
        await upgrade(db)
        await db.close()
    sim.sms_webhook_url = f"{url}/twilio/sms"
    handling: set[asyncio.Task[Any]] = set()

    @web.middleware
    async def note_task(request: web.Request, handler: Handler) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        handling.add(task)
        try:
            return await handler(request)
        finally:
            handling.discard(task)

    app = build_app(settings, clock)
    app.middlewares.insert(0, note_task)
    app.router.add_routes(routes)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    return Service(url, sim, settings, http, runner, sock, extra, clock, handling)


async def stop_service(service: Service) -> None:
    if service.runner is not None:
        runner, service.runner = service.runner, None
        await runner.cleanup()
        # aiohttp forgets the task of a request whose client has gone, and cleanup() leaves it running:
        # the live timeline (GET /cases/{id}/events) then polls the database until it can write. End
        # such requests while the event loop still runs, or a SQLite thread of theirs outlives the loop.
        left = [task for task in service.handling if not task.done()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        if left:
            await runner.app[DB].close()  # the connection they opened after the app's own close


class ShiftedClock:
    """The wall clock, moved forward on demand: a 15-minute window passes in a test at once, while the
    service's own timers keep running in real time. A call back asked for before a fast-forward is
    set again for its time on the moved clock: one that time has now passed fires at once."""

    def __init__(self) -> None:
        self.ahead = timedelta()
        self._waiting: set[_ShiftedCall] = set()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Handle:
        call = _ShiftedCall(self, when, callback)
        self._waiting.add(call)
        call.arm()
        return call

    def fast_forward(self, seconds: float) -> datetime:
        self.ahead += timedelta(seconds=seconds)
        for call in list(self._waiting):
            call.arm()
        return self.now()


@dataclass(eq=False)
class _ShiftedCall:
    clock: ShiftedClock
    when: datetime
    callback: Callable[[], None]
    timer: Handle | None = None

    def arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = loop_call_at(self.clock, self.when, self.fire)

    def fire(self) -> None:
        self.clock._waiting.discard(self)
        self.callback()

    def cancel(self) -> None:
        self.clock._waiting.discard(self)
        if self.timer is not None:
            self.timer.cancel()


def manual_clock() -> ManualClock:
    """A clock for the service that only the test moves (`Service.advance`). It starts at the wall
    time, to the second, so the schedules find the people on call today as the other tests do."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


async def responder_command(
    db_url: str, public_url: str, sim_url: str, *args: str, **env: str
) -> tuple[int, str, str]:
    """A `responder` command in its own process, with a service's environment (its database, its
    secrets) and `env` on top: (exit code, stdout, stderr)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "responder",
        *args,
        env={**os.environ, **environment(db_url, public_url, sim_url), **env},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await child.communicate()
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


def new_alert_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def patient_phones() -> AsyncIterator[PhoneSimulator]:
    """Phones that hold an unanswered call menu for its real timeout (6 s a play): only the
    playbook's clock moves the chain (a quick "no key" would rightly move it on at once)."""
    simulator = PhoneSimulator(
        ACCOUNT_SID,
        AUTH_TOKEN,
        "http://127.0.0.1:9/",
        [SERVICE_NUMBER],
        callback_delay_s=0.01,
        time_scale=1.0,
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


class ServiceLog:
    """The log events of the services running in this process, to wait on one: for what the service
    does that neither a phone nor the API shows (a refused schedule file)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """A structlog processor: note the event and pass it on unchanged."""
        self.entries.append(dict(event_dict))
        self._changed.set()
        return event_dict

    async def expect(self, event: str, after: int = 0, timeout_s: float = WAIT_S) -> dict[str, Any]:
        """The first entry named `event` from index `after` on, waiting for it if it is not there yet."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    found = next((e for e in self.entries[after:] if e.get("event") == event), None)
                    if found is not None:
                        return found
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = [e.get("event") for e in self.entries[after:]]
            raise AssertionError(f"no {event!r} logged within {timeout_s}s; logged: {seen}") from None


@contextmanager
def service_log() -> Iterator[ServiceLog]:
    """Note every structlog event (of the in-process services) while the block runs."""
    log = ServiceLog()
    processors = structlog.get_config()["processors"]
    processors.insert(0, log)  # the list itself: bound loggers hold it
    structlog.configure(processors=processors)
    try:
        yield log
    finally:
        processors.remove(log)
        structlog.configure(processors=processors)


def shipped_roster() -> Roster:
    """The people of config/responder.yaml with the schedules of config/schedules/."""
    config = validate_doc(load_yaml(ROOT / "config" / "responder.yaml"), ConfigFile)
    return Roster(config, load_schedules(ROOT / "config" / "schedules", config.people))
