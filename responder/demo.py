"""`responder demo`: the service on SQLite, the phone simulator, a sample alert, the escalation live.

Time runs 20x faster than in production (RESPONDER_TIME_SCALE=0.05: the service's case clock is a
scaled clock, so one playbook minute takes 3 s); the timeline shows both the demo time and the case
time, which is what it stands for at full speed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from responder.accounts.service import create_user
from responder.app import build_app
from responder.clock import utcnow
from responder.logging import configure_logging
from responder.settings import Settings, load_settings
from responder.simulator import PhoneSimulator
from responder.store.db import Database
from responder.store.migrate import upgrade
from responder.store.sealed import new_key_entry
from responder.tools import signed_headers

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "var" / "demo"
TIME_SCALE = 0.05
# Accounts for the web pages, made afresh with the demo's throwaway database (local use only).
DEMO_PASSWORD = "demo-password"  # noqa: S105 - a throwaway local demo account, printed on screen
DEMO_USERS = (("ana", ["negotiator"], "ana"), ("maya", ["manager"], None))
SERVICE_NUMBER = "+15005550006"
ACCOUNT_SID = "AC" + "d3" * 16
SECRETS = {
    "RESPONDER_SECRET_SOCIAL_EXAMPLE": "whsec_ZGVtby1zb2NpYWwtZXhhbXBsZS1zZWNyZXQ=",
    "RESPONDER_SECRET_FORUM_EXAMPLE": "whsec_ZGVtby1mb3J1bS1leGFtcGxlLXNlY3JldA==",
}
SCRIPTED_TIMEOUT_S = 50.0
# How long the timeline keeps printing after the accept (the notices to everyone else).
SETTLE_S = 1.5


def _listen(port: int) -> socket.socket:
    """A socket on the wished port, or any free one when it is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.bind(("127.0.0.1", 0))
    return sock


def _sample_path(alert_path: str | None) -> Path:
    if alert_path:
        return Path(alert_path)
    return ROOT / "tests" / "samples" / "imminent-live-fr.json"


def _environment(db_path: Path, public_url: str, api_base: str) -> dict[str, str]:
    return {
        "RESPONDER_CONFIG": str(ROOT / "config" / "responder.yaml"),
        "RESPONDER_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "RESPONDER_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "RESPONDER_PUBLIC_URL": public_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": uuid.uuid4().hex,
        "RESPONDER_TWILIO_FROM": SERVICE_NUMBER,
        "RESPONDER_TWILIO_API_BASE": api_base,
        # Made afresh each run, as long as `serve` demands (32 characters at least).
        "RESPONDER_API_TOKEN": secrets.token_urlsafe(32),
        "RESPONDER_LINK_SECRET": secrets.token_urlsafe(32),
        "RESPONDER_PSEUDONYM_KEY": secrets.token_urlsafe(32),
        "RESPONDER_DATA_KEYS": new_key_entry("demo"),  # a fresh key each demo: its data dies with it
        "RESPONDER_ICAL_SECRET": secrets.token_urlsafe(32),
        "RESPONDER_TIME_SCALE": str(TIME_SCALE),
        **SECRETS,
    }


async def run_demo(scripted: bool, alert_path: str | None) -> int:
    configure_logging("console", "warning")
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    db_path = DEMO_DIR / "responder.db"
    for stale in DEMO_DIR.glob("responder.db*"):
        stale.unlink()
    service_sock, sim_sock = _listen(8080), _listen(8090)
    public_url = f"http://127.0.0.1:{service_sock.getsockname()[1]}"
    sim_port = sim_sock.getsockname()[1]
    sim_sock.close()  # the simulator binds its own port; this only found a free one
    sim = PhoneSimulator(
        ACCOUNT_SID,
        "pending",
        f"{public_url}/twilio/sms",
        [SERVICE_NUMBER],
        callback_delay_s=0.05,
        # A person at the simulator page needs real seconds to press 1 on a call; the scripted
        # phone does not, so its menus keep the demo's pace (an unanswered one lasts what it would).
        time_scale=TIME_SCALE if scripted else 1.0,
    )
    env = _environment(db_path, public_url, "http://127.0.0.1:1")
    settings = load_settings(env)
    sim.auth_token = settings.env.twilio_auth_token
    await sim.start(port=sim_port)
    settings = load_settings({**env, "RESPONDER_TWILIO_API_BASE": sim.url})
    db = Database(settings.env.database_url)
    await upgrade(db)
    runner = web.AppRunner(build_app(settings), access_log=None)
    await runner.setup()  # writes the roster's people, which the demo accounts point to
    for username, roles, person in DEMO_USERS:
        await create_user(db, username, DEMO_PASSWORD, roles, person, utcnow())
    await db.close()
    await web.SockSite(runner, service_sock).start()
    try:
        return await _play(settings, sim, public_url, _sample_path(alert_path), scripted)
    finally:
        await runner.cleanup()
        await sim.stop()


async def _play(settings: Settings, sim: PhoneSimulator, url: str, sample: Path, scripted: bool) -> int:
    alert = json.loads(await asyncio.to_thread(sample.read_text, encoding="utf-8"))
    alert["alert_id"] = f"demo-{uuid.uuid4().hex[:8]}"
    body = json.dumps(alert)
    secret = settings.webhook_secrets[settings.config.integrations[0].name]
    print(f"responder demo: service {url}  |  phone simulator {sim.url}/  (open it to play the phones)")
    print(f"time runs {round(1 / TIME_SCALE)}x faster than production; [..] shows the production time")
    print(
        f"web pages: {url}/  (log in as ana, the negotiator, or maya, the manager;"
        f" password {DEMO_PASSWORD})\n"
    )
    bearer = {"Authorization": f"Bearer {settings.env.api_token}"}
    async with aiohttp.ClientSession(headers=bearer) as http:
        async with http.post(f"{url}/v1/alerts", data=body, headers=signed_headers(secret, body)) as response:
            answer = await response.json()
        print(f"POST /v1/alerts → {response.status} {answer}")
        case_id = answer["case_id"]
        negotiator = settings.person("ana")  # FR-75's primary negotiator in config/responder.yaml
        if negotiator is None:
            raise RuntimeError("the demo roster needs person 'ana'")
        phone = sim.phone(negotiator.phone)
        accepting = asyncio.create_task(_accept_after_second_page(phone)) if scripted else None
        if not scripted:
            print(
                "Nobody has accepted yet: reply ACK on a phone or press 1 on a call in the simulator page.\n"
            )
        case = await _follow(http, url, case_id, SCRIPTED_TIMEOUT_S if scripted else None)
        if accepting is not None:
            accepting.cancel()
    return _summary(case)


async def _accept_after_second_page(phone: Any) -> None:
    """Ana reads the SMS (first page), lets it be, then answers the call (second page) and presses 1."""
    await phone.expect_sms(contains="ACK", timeout_s=30)
    call = await phone.expect_call(timeout_s=30)
    await call.expect_prompt(timeout_s=30)
    await call.press("1")


async def _follow(
    http: aiohttp.ClientSession, url: str, case_id: str, timeout_s: float | None
) -> dict[str, Any]:
    """Print the timeline as it grows until the case is accepted (or the scripted run times out).

    After the accept it goes on a moment, so the notices to everyone else show as they are delivered.
    """
    shown, loop = 0, asyncio.get_running_loop()
    deadline = loop.time() + timeout_s if timeout_s else None
    while True:
        async with http.get(f"{url}/v1/cases/{case_id}") as response:
            case: dict[str, Any] = await response.json()
        for event in case["timeline"][shown:]:
            print(_line(case, event))
        shown = len(case["timeline"])
        if case["status"] != "open" and (deadline is None or deadline > loop.time() + SETTLE_S):
            deadline = loop.time() + SETTLE_S  # the accept is in: show what follows, then stop
        if deadline is not None and loop.time() > deadline:
            return case
        await asyncio.sleep(0.25)


def _line(case: dict[str, Any], event: dict[str, Any]) -> str:
    start = datetime.fromisoformat(case["received_at"])
    # Case times are on the service's scaled clock: they read production time; the demo took less.
    production_s = (datetime.fromisoformat(event["at"]) - start).total_seconds()
    elapsed_s = production_s * TIME_SCALE
    stamp = f"+{elapsed_s:5.1f}s [{int(production_s // 60):>2}m{int(production_s % 60):02d}s]"
    detail = {k: v for k, v in event["detail"].items() if k not in ("page",)}
    names = {p["id"]: p["person"]["name"] for p in case["pages"]}
    if "page" in event["detail"] and event["detail"]["page"] in names:
        detail["to"] = names[event["detail"]["page"]]
    facts = " ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, "", []))
    return f"{stamp}  {event['type']:<22} {event['actor']:<24} {facts}"


def _summary(case: dict[str, Any]) -> int:
    print()
    if case["status"] == "acknowledged" and case["accepted_by"]:
        print(f"Case {case['ref']} accepted by {case['accepted_by']['name']} via {case['accepted_via']}.")
        return 0
    print(f"Case {case['ref']} is still {case['status']}: nobody accepted in time.")
    return 1
