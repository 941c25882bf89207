"""One-time accept links sent in SMS pages. GET shows a confirm button (link previews must not accept);
POST accepts."""

from __future__ import annotations

import html

from aiohttp import web
from sqlalchemy import update
from sqlmodel import col

from responder.api.keys import CLOCK, DB, ENGINE, LINKS, ROSTER
from responder.engine.acceptance import accept
from responder.errors import Gone, NotFound
from responder.paging import inbound
from responder.store.models import Page
from responder.store.queries import rowcount

routes = web.RouteTableDef()

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Case {ref}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:28rem;padding:0 1rem}}
button{{font-size:1.3rem;padding:.8rem 1.4rem;width:100%;background:#0a5;color:#fff;border:0;
border-radius:.4rem}}
</style></head><body><h1>Case {ref}</h1><p>{message}</p>{form}</body></html>"""


def _html(ref: str, message: str, form: str = "", status: int = 200) -> web.Response:
    body = _PAGE.format(ref=html.escape(ref), message=html.escape(message), form=form)
    return web.Response(text=body, content_type="text/html", status=status)


async def _checked(request: web.Request) -> tuple[Page, str, str]:
    token = request.match_info["token"]
    found = await inbound.load_page(request.app[DB], request.app[LINKS].page_of(token))
    if found is None:
        raise NotFound("link: unknown page")
    page, case = found
    request.app[LINKS].check(token, page.person_id, request.app[CLOCK].now())
    return page, case.id, case.ref


@routes.get("/a/{token}")
async def show_link(request: web.Request) -> web.Response:
    page, _, ref = await _checked(request)
    if page.link_used_at is not None:
        raise Gone("link: already used")
    person = request.app[ROSTER].person(page.person_id)
    who = person.name if person else page.person_id
    form = '<form method="post"><button type="submit">Accept this case</button></form>'
    return _html(ref, f"{who}, accept case {ref}? The first person to accept takes it.", form)


@routes.post("/a/{token}")
async def use_link(request: web.Request) -> web.Response:
    page, case_id, ref = await _checked(request)
    now = request.app[CLOCK].now()
    async with request.app[DB].transaction() as session:
        used = await session.execute(
            update(Page)
            .where(col(Page.id) == page.id, col(Page.link_used_at).is_(None))
            .values(link_used_at=now)
        )
        if rowcount(used) != 1:
            raise Gone("link: already used")
    result = await accept(request.app[DB], request.app[ROSTER], case_id, page.person_id, "link", now)
    request.app[ENGINE].kick()
    if result.won:
        return _html(ref, f"Case {ref} is yours.")
    if result.status == "acknowledged":
        return _html(ref, f"Case {ref} was already accepted by {result.holder_name}.", status=409)
    return _html(ref, f"Case {ref} is closed.", status=409)
