"""POST /v1/alerts: signed alerts from platforms (PRODUCT.md §2). The answer never waits for Twilio."""

from __future__ import annotations

import json

import structlog
from aiohttp import web

from responder.api.keys import ENGINE, INTAKE, VERIFIER
from responder.errors import InvalidJSON, PayloadTooLarge
from responder.intake.schema import parse_alert
from responder.logging import get_logger
from responder.metrics import ALERTS

MAX_BODY_BYTES = 64 * 1024
log = get_logger(__name__)
routes = web.RouteTableDef()


async def _read_limited(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
    body = await request.content.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
    return body


@routes.post("/v1/alerts")
async def post_alert(request: web.Request) -> web.Response:
    body = await _read_limited(request)
    integration = request.app[VERIFIER].integration_for(body, request.headers)
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise InvalidJSON(f"body is not JSON: {exc}") from exc
    alert = parse_alert(raw)
    result = await request.app[INTAKE].receive(integration, request.headers["webhook-id"], alert, raw)
    structlog.contextvars.bind_contextvars(case_id=result.case_id)
    ALERTS.labels(alert.event, "duplicate" if result.duplicate else "taken").inc()
    if not result.duplicate:
        await request.app[ENGINE].react(result.case_id, result.news)
        request.app[ENGINE].kick()
    log.info(
        "alert_received",
        integration=integration,
        alert_event=alert.event,
        duplicate=result.duplicate,
        risk_level=alert.risk.level,
    )
    return web.json_response(
        {"case_id": result.case_id, "status": result.status, "duplicate": result.duplicate},
        status=200 if result.duplicate else 202,
    )
