"""Twilio's REST API (2010-04-01) for Messages and Calls, as much as the service's twilio SDK uses."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import MultiDict

from responder.simulator.keys import SWITCHBOARD
from responder.simulator.resources import API_VERSION, TwilioApiError, call_json, message_json
from responder.simulator.state import CallSetup
from responder.simulator.switchboard import ApiRequest, Switchboard

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
PREFIX = f"/{API_VERSION}/"

_API_ERRORS = {429: (20429, "Too Many Requests"), 500: (20500, "Internal Server Error")}
_MACHINE_DETECTION_MODES = frozenset({"Enable", "DetectMessageEnd"})


def add_rest_routes(app: web.Application) -> None:
    """Mount the REST resources under /2010-04-01/Accounts/{account_sid}/."""
    base = f"{PREFIX}Accounts/{{account_sid}}"
    app.router.add_post(f"{base}/Messages.json", create_message)
    app.router.add_get(f"{base}/Messages/{{sid}}.json", fetch_message)
    app.router.add_post(f"{base}/Calls.json", create_call)
    app.router.add_get(f"{base}/Calls/{{sid}}.json", fetch_call)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log every REST request, then refuse it unless Basic auth is account_sid:auth_token."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    board = request.app[SWITCHBOARD]
    board.requests.append(ApiRequest(request.method, request.path, await _form(request)))
    if not _authorized(request.headers.get(hdrs.AUTHORIZATION, ""), board):
        raise TwilioApiError(401, 20003, "Authenticate")
    if request.match_info.get("account_sid") not in (None, board.account_sid):
        raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")
    return await handler(request)


async def create_message(request: web.Request) -> web.Response:
    """POST Messages.json: queue an SMS; delivery and status callbacks follow in the background."""
    board = request.app[SWITCHBOARD]
    form = await _form(request)
    to = _required(form, "To", 21604, "A 'To' phone number is required.")
    _raise_api_error(board, to)
    _check_number(to)
    _raise_sms_refusal(board, to)
    from_ = _required(form, "From", 21603, "A 'From' phone number is required.")
    body = _required(form, "Body", 21602, "Message body is required.")
    message = board.send_message(to, from_, body, _optional(form, "StatusCallback"))
    delay_s = board.phone(to).behaviour.api_delay_s
    if delay_s:
        await asyncio.sleep(delay_s)  # sent already; the caller learns it late (or never, if it dies)
    return web.json_response(message_json(message, board.account_sid), status=201)


async def fetch_message(request: web.Request) -> web.Response:
    """GET Messages/{sid}.json: the message as it is now."""
    board = request.app[SWITCHBOARD]
    message = board.messages.get(request.match_info["sid"])
    if message is None:
        raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")
    return web.json_response(message_json(message, board.account_sid))


async def create_call(request: web.Request) -> web.Response:
    """POST Calls.json: queue a call; ringing, TwiML and progress callbacks follow in the background."""
    board = request.app[SWITCHBOARD]
    form = await _form(request)
    to = _required(form, "To", 21201, "No 'To' number is specified")
    _raise_api_error(board, to)
    _check_number(to)
    from_ = _required(form, "From", 21213, "No 'From' number is specified")
    url, twiml = _optional(form, "Url"), _optional(form, "Twiml")
    if url is None and twiml is None:
        raise TwilioApiError(400, 21205, "Url parameter is required.")
    setup = CallSetup(
        url=url,
        method=(_optional(form, "Method") or "POST").upper(),
        twiml=twiml,
        status_callback=_optional(form, "StatusCallback"),
        status_callback_method=(_optional(form, "StatusCallbackMethod") or "POST").upper(),
        events=frozenset(form.getall("StatusCallbackEvent", ["completed"])),
        machine_detection=form.get("MachineDetection") in _MACHINE_DETECTION_MODES,
        outcome=board.phone(to).behaviour.call,
    )
    call = board.place_call(to, from_, setup)
    return web.json_response(call_json(call, board.account_sid), status=201)


async def fetch_call(request: web.Request) -> web.Response:
    """GET Calls/{sid}.json: the call as it is now."""
    board = request.app[SWITCHBOARD]
    call = board.calls.get(request.match_info["sid"])
    if call is None:
        raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")
    return web.json_response(call_json(call, board.account_sid))


def _authorized(header: str, board: Switchboard) -> bool:
    """Whether an Authorization header carries Basic account_sid:auth_token."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        credentials = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        return False
    expected = f"{board.account_sid}:{board.auth_token}".encode()
    return hmac.compare_digest(credentials, expected)


def _raise_api_error(board: Switchboard, to: str) -> None:
    """Fail this create request, storing nothing, if the phone's behaviour asks for an API error."""
    phone = board.phones.get(to)
    status = phone.take_api_error() if phone is not None else None
    if status is not None:
        code, message = _API_ERRORS[status]
        raise TwilioApiError(status, code, message)


# Twilio's own wording, which quotes the number (the service must not pass it on).
_SMS_REFUSALS = {
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number {to} is not a valid mobile number",
    21211: "The 'To' number {to} is not a valid phone number.",
}


def _raise_sms_refusal(board: Switchboard, to: str) -> None:
    """Twilio's own refusals: a recipient who texted STOP (21610), or one the behaviour says to refuse."""
    phone = board.phones.get(to)
    if phone is None:
        return
    if phone.opted_out:
        raise TwilioApiError(400, 21610, _SMS_REFUSALS[21610])
    code = phone.behaviour.sms_reject_code
    if code is not None:
        refusal = _SMS_REFUSALS.get(code, "Message refused (error {code})")
        raise TwilioApiError(400, code, refusal.format(to=to, code=code))


def _check_number(to: str) -> None:
    if not E164.match(to):
        raise TwilioApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")


async def _form(request: web.Request) -> MultiDict[str]:
    """The form fields of a POST (aiohttp caches the parsed body), text values only."""
    if request.method != "POST":
        return MultiDict()
    form = await request.post()
    return MultiDict((name, value) for name, value in form.items() if isinstance(value, str))


def _required(form: MultiDict[str], name: str, code: int, message: str) -> str:
    value = _optional(form, name)
    if value is None:
        raise TwilioApiError(400, code, message)
    return value


def _optional(form: MultiDict[str], name: str) -> str | None:
    return form.get(name) or None
