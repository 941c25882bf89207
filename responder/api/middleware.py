"""Request ids, bound log context, and the one place domain errors become HTTP answers."""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import structlog
from aiohttp import web

from responder.errors import ResponderError, Unavailable
from responder.logging import describe_exception, get_logger
from responder.metrics import HTTP_REQUESTS, HTTP_SECONDS
from responder.store.db import is_unavailable

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answer is made here. None echoes the request: a browser gets a small HTML page,
    other clients a JSON body, and a crash gets neither the exception's text nor its traceback."""
    started = time.perf_counter()
    # A caller's own request id is kept only when it looks like one: it is logged and sent back.
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    resource = request.match_info.route.resource
    # The route, not the path: a path can carry a one-time link token or whatever a client put in it.
    route = resource.canonical if resource is not None else "unmatched"
    try:
        response = await handler(request)
    except ResponderError as exc:
        log.info("request_refused", route=route, status=exc.status, error=exc.code)
        response = _refusal(request, exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own 404 (no such route), 405, 413...: their text can quote a header, so only the
        # standard reason phrase goes out.
        reason = _phrase(exc.status)
        if _wants_html(request):
            response = _html_error(exc.status, reason, request_id)
        else:
            code = reason.lower().replace(" ", "_").replace("-", "_")
            body = {"error": code, "detail": reason, "request_id": request_id}
            response = web.json_response(body, status=exc.status)
        if "Allow" in exc.headers:  # a 405 says which methods the resource has
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception as exc:
        if is_unavailable(exc):
            # The database did not answer in time: nothing was stored, and the caller may try again.
            log.warning("database_unavailable", route=route, error=describe_exception(exc))
            unavailable = Unavailable("the database did not answer in time; nothing was stored: try again")
            response = _refusal(request, unavailable, request_id)
        else:
            log.exception("request_crashed", route=route)
            response = _crashed(request, request_id)
    response.headers["X-Request-Id"] = request_id
    HTTP_REQUESTS.labels(route, str(response.status)).inc()
    HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
    return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# Machine endpoints answer errors in JSON unless asked for HTML; the web pages answer in HTML unless
# asked for JSON.
_MACHINE_PATHS = ("/v1/", "/twilio/", "/ical/", "/metrics", "/healthz", "/readyz")


def _wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    if "application/json" in accept.split(",")[0]:
        return False
    return "text/html" in accept or not request.path.startswith(_MACHINE_PATHS)


def _detail_text(exc: ResponderError) -> str:
    if isinstance(exc.detail, list):
        return "\n".join(
            f"{item.get('field', '')}: {item.get('message', '')}"
            for item in exc.detail
            if isinstance(item, dict)
        )
    return exc.detail if isinstance(exc.detail, str) else exc.code.replace("_", " ")


def _html_error(status: int, text: str, request_id: str) -> web.Response:
    lines = "<br>".join(html.escape(line) for line in text.split("\n"))
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>responder</title>'
        '<link rel="stylesheet" href="/static/plain.css"></head><body>'
        f'<h1>{status}</h1><p>{lines}</p><p><a href="/">Back to responder</a></p>'
        f"<p><small>request {request_id}</small></p></body></html>"
    )
    return web.Response(text=body, content_type="text/html", status=status)


def _refusal(request: web.Request, exc: ResponderError, request_id: str) -> web.StreamResponse:
    if _wants_html(request):
        response = _html_error(exc.status, _detail_text(exc), request_id)
    else:
        response = web.json_response(
            {"error": exc.code, "detail": exc.detail, "request_id": request_id}, status=exc.status
        )
    if isinstance(exc, Unavailable):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _crashed(request: web.Request, request_id: str) -> web.StreamResponse:
    if _wants_html(request):
        return _html_error(500, "Something went wrong on our side. Try again.", request_id)
    return web.json_response({"error": "internal_error", "request_id": request_id}, status=500)
