"""The service under test: the real app on a real port, a real database, paging into the phone simulator."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from responder.app import build_app
from responder.oncall.config import load_schedules
from responder.oncall.roster import Roster
from responder.settings import ConfigFile, Settings, load_settings
from responder.simulator import PhoneSimulator
from responder.store.db import Database
from responder.store.migrate import upgrade
from responder.tools import signed_headers
from responder.yamlfile import load_yaml, validate_doc

ROOT = Path(__file__).resolve().parents[1]
# Copies of ../shared/samples/alerts (fictional people), kept in the repo so a fresh clone is complete.
SAMPLES = ROOT / "tests" / "samples"
ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
API_TOKEN = "test-api-token"
SOCIAL_SECRET = "whsec_" + "c29jaWFsLWV4YW1wbGUtc2VjcmV0LWZvci10ZXN0cw=="
FORUM_SECRET = "whsec_" + "Zm9ydW0tZXhhbXBsZS1zZWNyZXQtZm9yLXRlc3Rz"
SERVICE_NUMBER = "+15005550006"


def sample(name: str, **changes: Any) -> dict[str, Any]:
    """A sample alert from shared/samples, with top-level fields changed."""
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    data.update(changes)
    return data


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
        "RESPONDER_LINK_SECRET": "test-link-secret",
        "RESPONDER_SECRET_SOCIAL_EXAMPLE": SOCIAL_SECRET,
        "RESPONDER_SECRET_FORUM_EXAMPLE": FORUM_SECRET,
        "RESPONDER_TIME_SCALE": "0.01",
        "RESPONDER_PHONE_LIMIT": "0",  # tests page the same people often; test_failover sets it
        "RESPONDER_LOG_FORMAT": "json",
        "RESPONDER_LOG_LEVEL": "warning",
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
    **extra: str,
) -> Service:
    """Migrate the database and start the real app on a real port; the simulator calls it back."""
    sock = sock or bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = load_settings(environment(db_url, url, sim.url, **extra))
    if migrate:
        db = Database(db_url)
        await upgrade(db)
        await db.close()
    sim.sms_webhook_url = f"{url}/twilio/sms"
    runner = web.AppRunner(build_app(settings), access_log=None, shutdown_timeout=1.0)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    return Service(url, sim, settings, http, runner, sock, extra)


async def stop_service(service: Service) -> None:
    if service.runner is not None:
        await service.runner.cleanup()
        service.runner = None


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


def shipped_roster() -> Roster:
    """The people of config/responder.yaml with the schedules of config/schedules/."""
    config = validate_doc(load_yaml(ROOT / "config" / "responder.yaml"), ConfigFile)
    return Roster(config, load_schedules(ROOT / "config" / "schedules", config.people))
