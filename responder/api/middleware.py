"""Request ids, bound log context, and the one place domain errors become HTTP answers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from responder.errors import ResponderError
from responder.logging import get_logger

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
    except ResponderError as exc:
        log.info("request_refused", path=request.path, status=exc.status, error=exc.code)
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
    return response
