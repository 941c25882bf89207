"""Twilio's webhooks: status callbacks, voice menus and key presses, inbound SMS. All signature-checked."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from responder.api.keys import CLOCK, COMMANDS, DB, ROSTER, SETTINGS, TWILIO_CHECKER
from responder.errors import Forbidden
from responder.logging import get_logger
from responder.paging import inbound, replays, twiml
from responder.paging import webhook_fields as fields
from responder.paging.messages import (
    VOICE_LANGUAGES,
    PageFacts,
    language_of,
    sms_line,
    voice_line,
    voice_prompt,
)
from responder.paging.replies import parse_reply
from responder.paging.status import is_machine
from responder.store.models import Case, Page

log = get_logger(__name__)
routes = web.RouteTableDef()
XML = "application/xml"


async def verified_form(request: web.Request) -> MultiDictProxy[str]:
    """The POSTed form, when X-Twilio-Signature matches our public URL for this request."""
    form = await request.post()
    url = request.app[SETTINGS].env.public_url + request.path_qs
    params = MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))
    if not request.app[TWILIO_CHECKER].is_valid(url, params, request.headers.get("X-Twilio-Signature", "")):
        log.warning("twilio_signature_rejected", path=request.path)
        raise Forbidden("X-Twilio-Signature does not match")
    return params


def _error_code(form: MultiDictProxy[str]) -> str | None:
    code = fields.number(form.get("ErrorCode"))
    return str(code) if code is not None else None


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type=XML)


@routes.post("/twilio/status/{page_id}")
async def status_callback(request: web.Request) -> web.Response:
    form = await verified_form(request)
    # A status that has not Twilio's shape is no news at all (it changes nothing, and is not stored).
    status = fields.word(form.get("MessageStatus") or form.get("CallStatus"))
    if status is None:
        return web.Response(status=204)
    # One SMS may name several cases (over the flood limit): its status is each of their pages' status.
    await request.app[COMMANDS].delivery_report(
        request.match_info["page_id"],
        status,
        _error_code(form),
        fields.word(form.get("AnsweredBy")),
        fields.number(form.get("SequenceNumber")),
        carries=bool(request.query.get("carries")),
    )
    return web.Response(status=204)


def _not_open(request: web.Request, facts: PageFacts, lang: str, status: str, holder: str | None) -> str:
    key = "taken" if status == "acknowledged" else "closed"
    person = request.app[ROSTER].person(holder) if holder else None
    name = person.name if person else (holder or "")
    return twiml.say_and_hang_up(voice_line(key, lang, facts.ref, name), VOICE_LANGUAGES[lang])


async def _call_page(request: web.Request) -> tuple[Page, Case, str] | None:
    """The page a call is about, its case, and the callee's language (None for an unknown page)."""
    found = await inbound.load_page(request.app[DB], request.match_info["page_id"])
    if found is None:
        return None
    page, case = found
    person = request.app[ROSTER].person(page.person_id)
    return page, case, language_of(person.languages if person else ())


@routes.post("/twilio/voice/{page_id}")
async def voice_menu(request: web.Request) -> web.Response:
    form = await verified_form(request)
    found = await _call_page(request)
    if found is None:
        return _xml(twiml.say_and_hang_up("Goodbye.", "en-US"))
    page, case, lang = found
    facts, voice_lang, now = (
        PageFacts(case.ref, case.risk_level, case.region),
        VOICE_LANGUAGES[lang],
        request.app[CLOCK].now(),
    )
    answered_by = fields.word(form.get("AnsweredBy"))
    if is_machine(answered_by):
        # Voicemail is never an acknowledgement: leave a short message, move the chain on.
        await request.app[COMMANDS].machine_answered(case, page.id, answered_by)
        return _xml(twiml.say_and_hang_up(voice_line("voicemail", lang, case.ref), voice_lang))
    if page.purpose == "notice":
        return _xml(twiml.say_and_hang_up(page.body, voice_lang))  # news, not a page: nothing to accept
    if case.status != "open":
        return _xml(_not_open(request, facts, lang, case.status, case.accepted_by))
    play = request.query.get("play", "1")
    if play == "done":
        key = replays.key_press_key(form.get("CallSid"), page.id, "done", "")
        async with replays.once(request.app[DB], key, now) as first:
            if not first:
                log.warning("twilio_replay_ignored", kind="no_key", page_id=page.id)
            else:
                await request.app[COMMANDS].no_key_pressed(case.id, page.id)
        return _xml(twiml.say_and_hang_up(voice_line("no_input", lang, case.ref), voice_lang))
    return _xml(_menu(request, page.id, facts, lang, fields.number(play) or 1))


def _menu(request: web.Request, page_id: str, facts: PageFacts, lang: str, plays: int) -> str:
    """The menu as its `plays`-th playing; after the last one, no key counts as not answered."""
    base = f"{request.app[SETTINGS].env.public_url}/twilio/voice/{page_id}"
    if plays > twiml.PROMPT_PLAYS:
        return twiml.redirect(f"{base}?play=done")
    again = f"{base}?play={plays + 1}" if plays < twiml.PROMPT_PLAYS else f"{base}?play=done"
    return twiml.menu(voice_prompt(facts, lang), VOICE_LANGUAGES[lang], f"{base}/key?play={plays}", again)


@routes.post("/twilio/voice/{page_id}/key")
async def voice_key(request: web.Request) -> web.Response:
    form = await verified_form(request)
    found = await _call_page(request)
    if found is None:
        return _xml(twiml.say_and_hang_up("Goodbye.", "en-US"))
    page, case, lang = found
    digits, now = fields.digits(form.get("Digits")), request.app[CLOCK].now()
    menu_step = str(fields.number(request.query.get("play")) or 1)
    key = replays.key_press_key(form.get("CallSid"), page.id, menu_step, digits)
    async with replays.once(request.app[DB], key, now) as first:
        if not first:
            log.warning("twilio_replay_ignored", kind="key_press", page_id=page.id)
            return _xml(twiml.say_and_hang_up("Goodbye.", "en-US"))
        return await _act_on_key(request, page, case, lang, digits)


async def _act_on_key(request: web.Request, page: Page, case: Case, lang: str, digits: str) -> web.Response:
    facts, voice_lang = PageFacts(case.ref, case.risk_level, case.region), VOICE_LANGUAGES[lang]
    commands = request.app[COMMANDS]
    if digits == "1":
        answer = await commands.accept(case.id, page.person_id, "voice")
        if answer.came_to == "accepted":
            return _xml(twiml.say_and_hang_up(voice_line("accepted", lang, case.ref), voice_lang))
        return _xml(_not_open(request, facts, lang, answer.result.status, answer.result.holder_id))
    if digits == "2":
        await commands.pass_page(case.id, page.id, page.person_id, "voice", "passed by key 2")
        return _xml(twiml.say_and_hang_up(voice_line("passed", lang, case.ref), voice_lang))
    # '*' (or any other key) plays the menu again; it counts as one of the plays.
    return _xml(_menu(request, page.id, facts, lang, (fields.number(request.query.get("play")) or 1) + 1))


@routes.post("/twilio/sms")
async def inbound_sms(request: web.Request) -> web.Response:
    form = await verified_form(request)
    key = replays.sms_key(form.get("MessageSid"))
    async with replays.once(request.app[DB], key, request.app[CLOCK].now()) as first:
        if not first:
            log.warning("twilio_replay_ignored", kind="sms")
            return _xml(twiml.sms_reply(None))
        return await _act_on_sms(request, form)


async def _act_on_sms(request: web.Request, form: MultiDictProxy[str]) -> web.Response:
    person = request.app[ROSTER].by_phone(form.get("From", ""))
    if person is None:
        log.info("sms_from_unknown_number")
        return _xml(twiml.sms_reply(None))
    reply = parse_reply(form.get("Body", ""))
    lang, commands = language_of(person.languages), request.app[COMMANDS]
    if reply.verb == "help":
        return _xml(twiml.sms_reply(sms_line("help", lang=lang)))
    if reply.verb in ("stop", "start"):
        await commands.opt_out(person.id, reply.verb == "stop")
        return _xml(twiml.sms_reply(sms_line("stopped" if reply.verb == "stop" else "started", lang=lang)))
    found = (
        await inbound.find_page(request.app[DB], person.id, reply.code) if reply.verb != "unknown" else None
    )
    if found is None:
        return _xml(twiml.sms_reply(sms_line("unknown", lang=lang)))
    page, case = found
    facts = PageFacts(case.ref, case.risk_level, case.region)
    if reply.verb == "pass":
        passed = await commands.pass_page(case.id, page.id, person.id, "sms", "passed by SMS")
        return _xml(twiml.sms_reply(sms_line("passed" if passed else "closed", facts, lang=lang)))
    answer = await commands.accept(case.id, person.id, "sms")
    holder = answer.result.holder_name if answer.came_to == "taken" else ""
    return _xml(twiml.sms_reply(sms_line(answer.came_to, facts, lang=lang, holder=holder)))
