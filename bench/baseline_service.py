"""The bare baseline of bench/side_by_side.py: the simplest honest service doing responder's T+0 I/O.

    .venv/bin/python bench/baseline_service.py --database /tmp/baseline.db \
        --to +33639980001,+33639980002 serve --host 127.0.0.1 --port 8080

It reads responder's own environment (RESPONDER_PUBLIC_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN,
RESPONDER_TWILIO_FROM, RESPONDER_TWILIO_API_BASE, RESPONDER_API_TOKEN, RESPONDER_LINK_SECRET and
RESPONDER_SECRET_SOCIAL_EXAMPLE) and does for each alert what responder does at T+0, and no more:

- POST /v1/alerts: check the Standard Webhooks signature (`standardwebhooks`, as responder does); store
  the case, its `alert_received` event, the imminent-risk playbook's 8 tasks and one page row per
  `--to` number in one transaction; commit; answer 202. Then send the SMS through the `twilio` SDK and
  store their sids.
- POST /twilio/status/{page_id}: check X-Twilio-Signature (the SDK's RequestValidator) and move the
  page's status forward.
- GET /v1/cases/{case_id} (bearer RESPONDER_API_TOKEN): the case's ref, read by the benchmark after
  it has measured.

Honest: every row is committed before the answer and before the send, in one SQLite file with
responder's pragmas (WAL, synchronous=NORMAL, foreign keys), through aiosqlite as responder does
(bench/_baseline_store.py).
Bare: no escalation engine (no later steps, no fail-over), no retries, no recovery after a restart,
no roster, no flood limit, no logs, no metrics. A yardstick for responder, never a product.
It imports nothing from responder on purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from _baseline_store import NewCase, SendResult, Store
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

# Responder's limits and deadlines, so that neither side gets an easier job.
MAX_BODY_BYTES = 64 * 1024
MAX_ALERT_ID = 128
MAX_IN_FLIGHT = 20  # requests to Twilio at once (responder's outbox: MAX_IN_FLIGHT)
SEND_DEADLINE_S = 10.0
SMS_VALIDITY_S = 300
LINK_TTL_S = 15 * 60
SHUTDOWN_GRACE_S = 5.0  # sends still in flight at SIGTERM get this long
REF_TRIES = 3  # a clash of random case references is retried with a new one
# Case references people type in SMS replies: responder's alphabet (no look-alikes) and length.
REF_ALPHABET = "ACDEFHJKMNPRTUVWXY34679"
REF_LENGTH = 5
RISK_LEVELS = frozenset({"imminent", "high", "medium", "low"})
# The imminent-risk playbook's tasks: id, title, due after receipt (s).
TASKS = (
    ("triage", "Triage the alert", 2 * 60),
    ("identify", "Identify the person", 10 * 60),
    ("disclosure-request", "Emergency disclosure request to the platform if not located", 10 * 60),
    ("locate", "Locate the person", 15 * 60),
    ("jurisdiction", "Find the responsible jurisdiction", 20 * 60),
    ("dispatch", "Dispatch emergency services", 30 * 60),
    ("contact-confirmed", "Contact with the person confirmed", 45 * 60),
    ("follow-up", "Follow-up", 24 * 60 * 60),
)
# Responder's French page, so both send the same bytes.
SMS = (
    "RESPONDER dossier {ref} : risque {risk}, région {region}. Répondez ACK {ref} pour accepter, "
    "NO pour passer. {link}"
)


@dataclass(frozen=True)
class Config:
    """Everything the baseline needs, read once at start-up."""

    database: str
    to_numbers: tuple[str, ...]
    public_url: str
    account_sid: str
    auth_token: str
    from_number: str
    api_base: str
    api_token: str
    link_secret: str
    webhook_secret: str


ENVIRONMENT = {  # Config field → responder's variable
    "public_url": "RESPONDER_PUBLIC_URL",
    "account_sid": "TWILIO_ACCOUNT_SID",
    "auth_token": "TWILIO_AUTH_TOKEN",
    "from_number": "RESPONDER_TWILIO_FROM",
    "api_base": "RESPONDER_TWILIO_API_BASE",
    "api_token": "RESPONDER_API_TOKEN",
    "link_secret": "RESPONDER_LINK_SECRET",
    "webhook_secret": "RESPONDER_SECRET_SOCIAL_EXAMPLE",
}


def load_config(database: str, to: str, environ: Mapping[str, str]) -> Config:
    missing = [name for name in ENVIRONMENT.values() if not environ.get(name)]
    if missing:
        raise SystemExit(f"baseline: missing environment variable(s): {', '.join(missing)}")
    numbers = tuple(n.strip() for n in to.split(",") if n.strip())
    if not numbers:
        raise SystemExit("baseline: --to: at least one number")
    values = {field: environ[name] for field, name in ENVIRONMENT.items()}
    return Config(database, numbers, **values)


@dataclass(frozen=True)
class Alert:
    """The fields of an alert the baseline uses."""

    alert_id: str
    risk_level: str
    is_live: bool
    region: str | None
    stored: str  # the alert as received


def parse_alert(doc: Any) -> Alert:
    """Check the few fields the baseline relies on; ValueError names the one that is wrong."""
    if not isinstance(doc, dict):
        raise ValueError("body: must be a JSON object")
    alert_id, risk = doc.get("alert_id"), doc.get("risk")
    if not isinstance(alert_id, str) or not 0 < len(alert_id) <= MAX_ALERT_ID:
        raise ValueError(f"alert_id: a string of 1 to {MAX_ALERT_ID} characters")
    if doc.get("event") != "new":
        raise ValueError("event: the baseline takes new alerts only")
    if not isinstance(risk, dict) or risk.get("level") not in RISK_LEVELS:
        raise ValueError(f"risk.level: one of {', '.join(sorted(RISK_LEVELS))}")
    content = doc.get("content")
    hints = [h for h in doc.get("location_hints") or [] if isinstance(h, dict) and h.get("region")]
    best = max(hints, key=lambda h: float(h.get("confidence") or 0.0), default=None)
    return Alert(
        alert_id,
        str(risk["level"]),
        isinstance(content, dict) and bool(content.get("is_live")),
        str(best["region"]) if best else None,
        json.dumps(doc),
    )


def new_ref() -> str:
    return "".join(secrets.choice(REF_ALPHABET) for _ in range(REF_LENGTH))


def accept_link(config: Config, page_id: str, number: str, now: datetime) -> str:
    """A signed, expiring accept link, as responder puts in every page."""
    expires = int(now.timestamp() + LINK_TTL_S)
    signed = f"{page_id}.{number}.{expires}".encode()
    mac = hmac.new(config.link_secret.encode(), signed, hashlib.sha256).digest()
    return f"{config.public_url}/a/{page_id}.{expires}.{base64.urlsafe_b64encode(mac).decode()[:32]}"


@dataclass(frozen=True)
class Page:
    id: str
    to: str
    body: str


def new_pages(config: Config, alert: Alert, ref: str, now: datetime) -> list[Page]:
    """One SMS page per number, each with its own accept link."""
    risk, region = alert.risk_level.upper(), alert.region or "unknown"
    pages = []
    for number in config.to_numbers:
        page_id = uuid.uuid4().hex
        link = accept_link(config, page_id, number, now)
        pages.append(Page(page_id, number, SMS.format(ref=ref, risk=risk, region=region, link=link)))
    return pages


async def store_case(store: Store, config: Config, alert: Alert) -> tuple[str, list[Page]] | str:
    """Commit a new case with its event, tasks and pages: (case id, pages), or the case id of a repeat."""
    detail = json.dumps({"risk_level": alert.risk_level, "is_live": alert.is_live, "region": alert.region})
    for _ in range(REF_TRIES):
        now = datetime.now(UTC)
        case_id, ref, at = str(uuid.uuid4()), new_ref(), now.isoformat()
        pages = new_pages(config, alert, ref, now)
        new = NewCase(
            (case_id, ref, alert.alert_id, alert.risk_level, alert.is_live, alert.region, alert.stored, at),
            (case_id, at, detail),
            [(case_id, t, title, (now + timedelta(seconds=s)).isoformat()) for t, title, s in TASKS],
            [(p.id, case_id, p.to, p.body, at, at) for p in pages],
        )
        if await store.insert_case(new):
            return case_id, pages
        if (existing := await store.case_of_alert(alert.alert_id)) is not None:
            return existing
        # Otherwise the reference clashed: try a new one.
    raise RuntimeError(f"no free case reference after {REF_TRIES} tries")


class Sender:
    """Sends committed pages through the twilio SDK (MAX_IN_FLIGHT at once), then stores their sids."""

    def __init__(self, config: Config, store: Store) -> None:
        self._config, self._store = config, store
        # As responder: no blind SDK retries (a repeated POST is a duplicate page), its API base.
        self._http = AsyncTwilioHttpClient(max_retries=None)
        self._client = Client(config.account_sid, config.auth_token, http_client=self._http)
        self._client.api.base_url = config.api_base
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, pages: Sequence[Page]) -> None:
        task = asyncio.create_task(self._send_all(pages))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_all(self, pages: Sequence[Page]) -> None:
        results = await asyncio.gather(*(self._send(page) for page in pages))
        await self._store.mark_sent(results, datetime.now(UTC).isoformat())

    async def _send(self, page: Page) -> SendResult:
        callback = f"{self._config.public_url}/twilio/status/{page.id}"
        async with self._slots:
            try:
                async with asyncio.timeout(SEND_DEADLINE_S):
                    sent = await self._client.messages.create_async(
                        to=page.to,
                        from_=self._config.from_number,
                        body=page.body,
                        status_callback=callback,
                        validity_period=SMS_VALIDITY_S,
                    )
            except (TwilioRestException, TimeoutError, aiohttp.ClientError, OSError) as exc:
                return SendResult(page.id, None, "failed", type(exc).__name__)  # no retries: bare
        return SendResult(page.id, str(sent.sid), str(sent.status))

    async def stop(self, grace_s: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace_s)
        await self._http.close()


CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
SENDER = web.AppKey("sender", Sender)
WEBHOOK = web.AppKey("webhook", Webhook)
VALIDATOR = web.AppKey("validator", RequestValidator)
WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
routes = web.RouteTableDef()


@routes.post("/v1/alerts")
async def post_alert(request: web.Request) -> web.Response:
    body = await request.read()  # over client_max_size: 413
    headers = {name: request.headers.get(name, "") for name in WEBHOOK_HEADERS}
    try:
        doc = request.app[WEBHOOK].verify(body, headers)
    except (WebhookVerificationError, binascii.Error, ValueError) as exc:  # ValueError: not JSON
        raise web.HTTPUnauthorized(text=f"signature: {exc}") from exc
    try:
        alert = parse_alert(doc)
    except ValueError as exc:
        raise web.HTTPUnprocessableEntity(text=str(exc)) from exc
    stored = await store_case(request.app[STORE], request.app[CONFIG], alert)
    if isinstance(stored, str):
        return web.json_response({"case_id": stored, "status": "open", "duplicate": True}, status=200)
    case_id, pages = stored
    request.app[SENDER].start(pages)
    return web.json_response({"case_id": case_id, "status": "open", "duplicate": False}, status=202)


@routes.post("/twilio/status/{page_id}")
async def status_callback(request: web.Request) -> web.Response:
    form = await request.post()
    params = {key: value for key, value in form.items() if isinstance(value, str)}
    url = request.app[CONFIG].public_url + request.path_qs
    if not request.app[VALIDATOR].validate(url, params, request.headers.get("X-Twilio-Signature", "")):
        raise web.HTTPForbidden(text="X-Twilio-Signature does not match")
    status, now = params.get("MessageStatus", ""), datetime.now(UTC).isoformat()
    await request.app[STORE].move_status(request.match_info["page_id"], status, now)
    return web.Response(status=204)


@routes.get("/v1/cases/{case_id}")
async def get_case(request: web.Request) -> web.Response:
    expected = f"Bearer {request.app[CONFIG].api_token}".encode()
    given = request.headers.get("Authorization", "").encode(errors="replace")
    if not hmac.compare_digest(given, expected):
        raise web.HTTPUnauthorized()
    case_id = request.match_info["case_id"]
    if (found := await request.app[STORE].ref_of(case_id)) is None:
        raise web.HTTPNotFound()
    ref, status = found
    return web.json_response({"case_id": case_id, "ref": ref, "status": status})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def open_store(app: web.Application) -> AsyncIterator[None]:
    app[STORE] = store = await Store.open(app[CONFIG].database)
    yield
    await store.close()


async def open_sender(app: web.Application) -> AsyncIterator[None]:
    # Built inside the running loop: the SDK's async client makes its aiohttp session there.
    app[SENDER] = sender = Sender(app[CONFIG], app[STORE])
    yield
    await sender.stop(SHUTDOWN_GRACE_S)


def build_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[CONFIG] = config
    app[WEBHOOK] = Webhook(config.webhook_secret)
    app[VALIDATOR] = RequestValidator(config.auth_token)
    app.cleanup_ctx.extend([open_store, open_sender])  # cleaned up in reverse: sends end first
    app.add_routes(routes)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["serve"], help="serve (as `responder serve`)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--database", required=True, help="the SQLite file (created when absent)")
    parser.add_argument("--to", required=True, help="the numbers paged for every alert, comma-separated")
    args = parser.parse_args()
    config = load_config(args.database, args.to, os.environ)
    web.run_app(build_app(config), host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
