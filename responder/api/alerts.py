"""POST /v1/alerts: signed alerts from platforms (PRODUCT.md §2). The answer never waits for Twilio."""

from __future__ import annotations

import structlog
from aiohttp import EofStream, web
from aiohttp.http_exceptions import PayloadEncodingError as PayloadError

from responder.api.keys import COMMANDS, SETTINGS, VERIFIER
from responder.errors import BadRequest, PayloadTooLarge, ValidationFailed
from responder.intake.schema import parse_alert
from responder.logging import get_logger
from responder.metrics import ALERTS

MAX_BODY_BYTES = 64 * 1024
# The whole of intake may take this many database deadlines (a connection, then a few statements).
INTAKE_DEADLINE_FACTOR = 2
# The delivery's idempotency key is stored (PRODUCT.md §2: ids of at most 128 characters).
MAX_WEBHOOK_ID = 128
log = get_logger(__name__)
routes = web.RouteTableDef()


async def _read_limited(request: web.Request) -> bytes:
    """The whole body, however it arrives (in pieces, chunked), refused as soon as it passes the cap."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
    body = bytearray()
    try:
        # read(n) returns what has arrived so far, up to n bytes, and b"" only at the end of the body.
        while chunk := await request.content.read(MAX_BODY_BYTES + 1 - len(body)):
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes")
    except (ConnectionError, EofStream, PayloadError) as exc:
        # The client went away (or broke the framing) before the body ended: not our failure.
        raise BadRequest("the body ended before it was complete") from exc
    return bytes(body)


def _webhook_id(request: web.Request) -> str:
    webhook_id = request.headers["webhook-id"]  # present: the signature check needs it
    if len(webhook_id) > MAX_WEBHOOK_ID:
        raise ValidationFailed(
            [{"field": "webhook-id", "message": f"must be at most {MAX_WEBHOOK_ID} characters"}]
        )
    return webhook_id


@routes.post("/v1/alerts")
async def post_alert(request: web.Request) -> web.Response:
    body = await _read_limited(request)
    integration = request.app[VERIFIER].integration_for(body, request.headers)
    webhook_id = _webhook_id(request)
    alert = parse_alert(body)
    # Each statement has its own deadline; this bounds the whole (pool waits, retries) as well. Past
    # it the answer is 503: the platform tries again, and a repeat is recognised if it was stored.
    deadline_s = INTAKE_DEADLINE_FACTOR * request.app[SETTINGS].env.db_deadline_s
    result = await request.app[COMMANDS].receive_alert(integration, webhook_id, alert, deadline_s)
    structlog.contextvars.bind_contextvars(case_id=result.case_id)
    ALERTS.labels(alert.event, "duplicate" if result.duplicate else "taken").inc()
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
