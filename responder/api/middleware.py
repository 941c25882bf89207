"""Request ids, bound log context, and the one place domain errors become HTTP answers."""

from __future__ import annotations

import html
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from responder.errors import ResponderError
from responder.logging import get_logger
from responder.metrics import HTTP_REQUESTS, HTTP_SECONDS

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
    except ResponderError as exc:
        log.info("request_refused", path=request.path, status=exc.status, error=exc.code)
        if _wants_html(request):
            response = _html_error(exc, request_id)
        else:
            response = web.json_response(
                {"error": exc.code, "detail": exc.detail, "request_id": request_id}, status=exc.status
            )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = web.json_response(
            {
                "error": exc.reason.lower().replace(" ", "_"),
                "detail": exc.text or exc.reason,
                "request_id": request_id,
            },
            status=exc.status,
        )
    except Exception:
        log.exception("request_crashed", path=request.path)
        response = web.json_response({"error": "internal_error", "request_id": request_id}, status=500)
    response.headers["X-Request-Id"] = request_id
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    HTTP_REQUESTS.labels(route, str(response.status)).inc()
    HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
    return response


# Machine endpoints answer errors in JSON unless asked for HTML; the web pages answer in HTML unless
# asked for JSON.
_MACHINE_PATHS = ("/v1/", "/twilio/", "/ical/", "/metrics", "/healthz", "/readyz")


def _wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    if "application/json" in accept.split(",")[0]:
        return False
    return "text/html" in accept or not request.path.startswith(_MACHINE_PATHS)


def _html_error(exc: ResponderError, request_id: str) -> web.Response:
    if isinstance(exc.detail, list):
        text = "<br>".join(
            html.escape(f"{item.get('field', '')}: {item.get('message', '')}")
            for item in exc.detail
            if isinstance(item, dict)
        )
    else:
        text = html.escape(exc.detail if isinstance(exc.detail, str) else exc.code.replace("_", " "))
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>responder</title></head>'
        f'<body style="font-family:system-ui,sans-serif;margin:2rem auto;max-width:28rem;padding:0 1rem">'
        f'<h1>{exc.status}</h1><p>{text}</p><p><a href="/">Back to responder</a></p>'
        f"<p><small>request {request_id}</small></p></body></html>"
    )
    return web.Response(text=body, content_type="text/html", status=exc.status)
