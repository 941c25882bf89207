"""/docs: the API's OpenAPI document, rendered for people."""

from __future__ import annotations

from aiohttp import web

from responder.api.openapi import openapi_document
from responder.web.views import current, render

routes = web.RouteTableDef()


@routes.get("/docs")
async def api_docs(request: web.Request) -> web.Response:
    """The OpenAPI document rendered for people (no login: it describes, it holds no data)."""
    return render("api_docs.html", principal=await current(request), doc=openapi_document())
