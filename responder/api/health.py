"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from responder.api.keys import DB
from responder.api.openapi import openapi_document
from responder.errors import NotReady

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        async with request.app[DB].sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise NotReady(f"database: {type(exc).__name__}") from exc
    return web.json_response({"status": "ready"})


@routes.get("/v1/openapi.json")
async def openapi(_: web.Request) -> web.Response:
    return web.json_response(openapi_document())
