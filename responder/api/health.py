"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from responder.api.keys import DB
from responder.api.openapi import openapi_document
from responder.errors import NotReady
from responder.metrics import OPEN_CASES, exposition
from responder.store.cases import count_open
from responder.store.db import within

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


# A load balancer's health check waits about this long; readiness must answer within it.
READY_DEADLINE_S = 2.0


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    db = request.app[DB]
    try:
        # A frozen database answers nothing at all: unready within a bound, not after it thaws.
        await within(min(db.deadline_s, READY_DEADLINE_S), db.ping())
    except Exception as exc:
        raise NotReady(f"database: {type(exc).__name__}") from exc
    return web.json_response({"status": "ready"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; the open-case gauge is read from the database at each scrape."""
    OPEN_CASES.set(await count_open(request.app[DB]))
    return web.Response(body=exposition(), content_type="text/plain", charset="utf-8")


@routes.get("/v1/openapi.json")
async def openapi(_: web.Request) -> web.Response:
    return web.json_response(openapi_document())
