"""One-time accept links sent in SMS pages, in the reader's language.

GET shows a confirm button (SMS apps fetch links for previews: a GET must never accept); POST accepts.
"""

from __future__ import annotations

import html

from aiohttp import web

from responder.api.keys import CLOCK, COMMANDS, DB, LINKS, ROSTER
from responder.errors import Gone, NotFound
from responder.paging import inbound
from responder.paging.messages import language_of
from responder.store.models import Case, Page

routes = web.RouteTableDef()

_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<link rel="stylesheet" href="/static/plain.css"></head>
<body><h1>{title}</h1><p>{message}</p>{form}</body></html>"""
_TEXT = {
    "en": {
        "title": "Case {ref}",
        "ask": "{who}, accept case {ref}? The first person to accept takes it.",
        "button": "Accept this case",
        "yours": "Case {ref} is yours. Everyone else paged is being told. Start the investigation now.",
        "yours_since": "Case {ref} is yours: you accepted it at {at} UTC.",
        "taken": "Case {ref} was already accepted by {holder}. No action needed.",
        "closed": "Case {ref} is closed. No action needed.",
        "open": "Open the case page",
    },
    "fr": {
        "title": "Dossier {ref}",
        "ask": "{who}, accepter le dossier {ref} ? La première personne qui accepte le prend.",
        "button": "Accepter ce dossier",
        "yours": "Le dossier {ref} est à vous. Les autres personnes alertées sont prévenues. Commencez "
        "l'enquête maintenant.",
        "yours_since": "Le dossier {ref} est à vous : vous l'avez accepté à {at} UTC.",
        "taken": "Le dossier {ref} a déjà été accepté par {holder}. Rien à faire.",
        "closed": "Le dossier {ref} est clos. Rien à faire.",
        "open": "Ouvrir la page du dossier",
    },
}


def _case_link(lang: str, case_id: str) -> str:
    label = html.escape(_TEXT[lang]["open"])
    return f'<p><a href="/cases/{html.escape(case_id)}"><button type="button">{label}</button></a></p>'


def _html(lang: str, ref: str, key: str, status: int = 200, form: str = "", **values: str) -> web.Response:
    text = _TEXT[lang]
    message = text[key].format(ref=ref, **values)
    body = _PAGE.format(
        lang=lang, title=html.escape(text["title"].format(ref=ref)), message=html.escape(message), form=form
    )
    return web.Response(text=body, content_type="text/html", status=status)


async def _checked(request: web.Request) -> tuple[Page, Case, str]:
    """The page and case a genuine, unexpired token is for, and the reader's language."""
    token = request.match_info["token"]
    found = await inbound.load_page(request.app[DB], request.app[LINKS].page_of(token))
    if found is None:
        raise NotFound("link: unknown page")
    page, case = found
    request.app[LINKS].check(token, page.person_id, request.app[CLOCK].now())
    person = request.app[ROSTER].person(page.person_id)
    return page, case, language_of(person.languages if person else ())


def _after_use(request: web.Request, page: Page, case: Case, lang: str) -> web.Response:
    """A used link opened again: say who has the case rather than just 'gone'."""
    if case.accepted_by == page.person_id and case.accepted_at is not None:
        return _html(
            lang,
            case.ref,
            "yours_since",
            form=_case_link(lang, case.id),
            at=case.accepted_at.strftime("%H:%M"),
        )
    if case.status == "acknowledged" and case.accepted_by:
        holder = request.app[ROSTER].person(case.accepted_by)
        return _html(lang, case.ref, "taken", status=409, holder=holder.name if holder else case.accepted_by)
    raise Gone("link: already used")


@routes.get("/a/{token}")
async def show_link(request: web.Request) -> web.Response:
    page, case, lang = await _checked(request)
    if page.link_used_at is not None:
        return _after_use(request, page, case, lang)
    person = request.app[ROSTER].person(page.person_id)
    form = f'<form method="post"><button type="submit">{html.escape(_TEXT[lang]["button"])}</button></form>'
    return _html(lang, case.ref, "ask", form=form, who=person.name if person else page.person_id)


@routes.post("/a/{token}")
async def use_link(request: web.Request) -> web.Response:
    page, case, lang = await _checked(request)
    answer = await request.app[COMMANDS].accept_by_link(page)
    if answer is None:  # used before (a second tap, another tab)
        return _after_use(request, page, case, lang)
    if answer.came_to == "accepted":
        return _html(lang, case.ref, "yours", form=_case_link(lang, case.id))
    if answer.came_to == "taken":
        return _html(lang, case.ref, "taken", status=409, holder=answer.result.holder_name)
    return _html(lang, case.ref, "closed", status=409)
