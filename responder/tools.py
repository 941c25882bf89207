"""Helpers for people trying the service: post a signed sample alert."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp
from standardwebhooks.webhooks import Webhook

from responder.clock import utcnow
from responder.errors import ConfigError, ResponderError
from responder.settings import Settings


def signed_headers(
    secret: str, body: str, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for `body` signed with an integration's secret."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or utcnow()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
    }


async def simulate_alert(
    settings: Settings, path: str, url: str | None, integration: str | None, alert_id: str | None
) -> int:
    name = integration or settings.config.integrations[0].name
    if name not in settings.webhook_secrets:
        raise ConfigError([f"--integration: unknown integration {name!r}"])
    try:
        alert = json.loads(await asyncio.to_thread(Path(path).read_text, encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError([f"{path}: cannot read alert JSON: {exc}"]) from exc
    if alert_id:
        alert["alert_id"] = alert_id
    body = json.dumps(alert)
    target = (url or settings.env.public_url).rstrip("/") + "/v1/alerts"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            target, data=body, headers=signed_headers(settings.webhook_secrets[name], body)
        ) as response,
    ):
        print(response.status, await response.text())
        return 0 if response.status < 300 else 1


def explain_playbook(path: str, alert_path: str | None, region: str | None, accept_at: str | None) -> int:
    """Print the dry run of one playbook with the roster of the config file (no secrets needed)."""
    from responder.durations import parse_duration_s
    from responder.engine.explain import Scenario, explain
    from responder.engine.plan import compile_plan
    from responder.engine.playbook import AlertFacts, Playbook
    from responder.intake.schema import parse_alert
    from responder.oncall.config import load_roster
    from responder.settings import load_settings
    from responder.yamlfile import load_yaml, validate_doc

    playbook = validate_doc(load_yaml(Path(path)), Playbook)
    roster = load_roster(load_settings(require_secrets=False))
    facts = None
    if alert_path:
        try:
            alert = parse_alert(Path(alert_path).read_bytes())
        except (OSError, ResponderError) as exc:
            raise ConfigError([f"{alert_path}: cannot read alert JSON: {exc}"]) from exc
        region = alert.best_region()
        facts = AlertFacts(alert.risk.level, alert.is_live, region, alert.language, "")
    try:
        accept_s = parse_duration_s(accept_at) if accept_at else None
    except ValueError as exc:
        raise ConfigError([f"--accept-at: {exc}"]) from exc
    for line in explain(compile_plan(playbook), roster, Scenario(region, accept_s, facts)):
        print(line)
    return 0
