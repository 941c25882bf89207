"""The control API and web page a person uses to play the phones in a demo."""

from __future__ import annotations

import importlib.resources
import json
from typing import Any

from aiohttp import web

from responder.simulator.behaviour import BehaviourError
from responder.simulator.carrier import WebhookError
from responder.simulator.keys import PAGE, SWITCHBOARD
from responder.simulator.rest import E164
from responder.simulator.state import Phone, SimCall, SimMessage


class ControlError(Exception):
    """A control request the simulator refuses; rendered as {"error": code, "detail": ...}."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def add_control_routes(app: web.Application) -> None:
    """Mount the page (/) and the control API (/sim/...)."""
    app[PAGE] = importlib.resources.files("responder.simulator").joinpath("page.html").read_text("utf-8")
    app.router.add_get("/", show_page)
    app.router.add_get("/sim/state.json", show_state)
    app.router.add_post("/sim/phones/{number}/sms", send_sms)
    app.router.add_post("/sim/phones/{number}/behaviour", set_behaviour)
    app.router.add_post("/sim/calls/{sid}/digits", press_digits)


async def show_page(request: web.Request) -> web.Response:
    """The single-page UI; it polls /sim/state.json."""
    return web.Response(text=request.app[PAGE], content_type="text/html")


async def show_state(request: web.Request) -> web.Response:
    """Every phone with its messages and calls, oldest first."""
    board = request.app[SWITCHBOARD]
    phones = [_phone_json(phone) for phone in board.phones.values()]
    return web.json_response({"service_numbers": board.service_numbers, "phones": phones})


async def send_sms(request: web.Request) -> web.Response:
    """A phone texts the service: {"body": "..."} → {"replies": [...]}."""
    phone = _phone(request)
    body = _field(await _json_object(request), "body")
    try:
        replies = await phone.send_sms(body)
    except WebhookError as exc:
        raise ControlError(502, "webhook_failed", str(exc)) from exc
    return web.json_response({"replies": replies})


async def set_behaviour(request: web.Request) -> web.Response:
    """Change some behaviour fields of a phone: {"sms": "failed"} → the whole new behaviour."""
    phone = _phone(request)
    try:
        phone.behaviour = phone.behaviour.updated(await _json_object(request))
    except BehaviourError as exc:
        raise ControlError(400, f"invalid_{exc.field}", str(exc)) from exc
    return web.json_response(phone.behaviour.to_json())


async def press_digits(request: web.Request) -> web.Response:
    """Press keys on a call waiting in a <Gather>: {"digits": "1"} → {"said": "..."}."""
    call = request.app[SWITCHBOARD].calls.get(request.match_info["sid"])
    if call is None:
        raise ControlError(404, "unknown_call", f"no call {request.match_info['sid']}")
    digits = _field(await _json_object(request), "digits")
    if not call.waiting_for_digits or call.setup.outcome == "machine":
        raise ControlError(409, "not_waiting_for_digits", f"call {call.sid} is not waiting for keys")
    try:
        said = await call.press(digits)
    except AssertionError as exc:  # press() is a test driver: it reports a stalled call this way
        raise ControlError(504, "call_stalled", str(exc)) from exc
    return web.json_response({"said": said})


def _phone(request: web.Request) -> Phone:
    number = request.match_info["number"]
    if not E164.match(number):
        raise ControlError(400, "invalid_number", f"{number!r} is not an E.164 number")
    return request.app[SWITCHBOARD].phone(number)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise ControlError(400, "invalid_json", f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlError(400, "invalid_json", "body must be a JSON object")
    return data


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ControlError(400, f"invalid_{name}", f"{name}: a non-empty string is required")
    return value


def _phone_json(phone: Phone) -> dict[str, object]:
    messages = sorted([*phone.messages, *phone.undelivered, *phone.sent], key=lambda m: m.created_at)
    return {
        "number": phone.number,
        "behaviour": phone.behaviour.to_json(),
        "messages": [_message_json(m) for m in messages],
        "calls": [_call_json(c) for c in phone.calls],
    }


def _message_json(message: SimMessage) -> dict[str, object]:
    return {
        "sid": message.sid,
        "from": message.from_,
        "to": message.to,
        "body": message.body,
        "direction": message.direction,
        "status": message.status,
        "error_code": message.error_code,
        "created_at": message.created_at.isoformat(),
    }


def _call_json(call: SimCall) -> dict[str, object]:
    return {
        "sid": call.sid,
        "from": call.from_,
        "status": call.status,
        "answered_by": call.answered_by,
        "machine": call.setup.outcome == "machine",
        "said": call.said,
        "pressed": call.pressed,
        "waiting_for_digits": call.waiting_for_digits,
        "errors": call.errors,
        "created_at": call.created_at.isoformat(),
    }
