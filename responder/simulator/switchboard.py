"""The simulated network's memory: phones, every message and call, the REST log and running flows."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from multidict import MultiDict

from responder.simulator.calling import CallRun
from responder.simulator.carrier import Carrier
from responder.simulator.messaging import deliver_message, post_inbound_sms
from responder.simulator.resources import new_sid
from responder.simulator.state import CallSetup, Changes, Phone, SimCall, SimMessage

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ApiRequest:
    """One REST request the simulator received (form keeps repeated fields: use getall())."""

    method: str
    path: str
    form: MultiDict[str]


class Switchboard:
    """Everything the simulator knows and does, without the HTTP server (see PhoneSimulator)."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        sms_webhook_url: str,
        service_numbers: Sequence[str],
        callback_delay_s: float = 0.02,
        time_scale: float = 1.0,
    ) -> None:
        if not service_numbers:
            raise ValueError("service_numbers: at least one number is needed to receive texts")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sms_webhook_url = sms_webhook_url
        self.service_numbers = list(service_numbers)
        self.callback_delay_s = callback_delay_s
        self.time_scale = time_scale
        self.changes = Changes()
        self.phones: dict[str, Phone] = {}
        self.messages: dict[str, SimMessage] = {}
        self.calls: dict[str, SimCall] = {}
        self.requests: list[ApiRequest] = []
        self._carrier: Carrier | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def phone(self, number: str) -> Phone:
        """Get or create the phone with this number."""
        if number not in self.phones:
            self.phones[number] = Phone(number, self, self.changes)
        return self.phones[number]

    @property
    def carrier(self) -> Carrier:
        if self._carrier is None:
            raise RuntimeError("the simulator is not started")
        return self._carrier

    def send_message(self, to: str, from_: str, body: str, status_callback: str | None) -> SimMessage:
        """Accept an SMS for a phone and start carrying it (REST create)."""
        carrier, phone = self.carrier, self.phone(to)
        message = SimMessage(new_sid("SM"), to, from_, body, "outbound-api", status_callback=status_callback)
        self.messages[message.sid] = message
        self._spawn(deliver_message(carrier, message, phone, phone.behaviour))
        return message

    def place_call(self, to: str, from_: str, setup: CallSetup) -> SimCall:
        """Accept a call to a phone and start ringing it (REST create)."""
        carrier = self.carrier
        call = SimCall(new_sid("CA"), to, from_, setup, self.changes)
        self.calls[call.sid] = call
        self.phone(to).add_call(call)
        self._spawn(CallRun(carrier, call).run())
        return call

    async def receive_sms(self, phone: Phone, body: str) -> list[str]:
        """Post a phone's text to the service; deliver and return its TwiML replies."""
        service_number = self.service_numbers[0]
        word = body.strip().upper()
        if word in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"):
            phone.opted_out = True  # Twilio's own opt-out handling, before the service hears of it
        elif word in ("START", "UNSTOP", "YES"):
            phone.opted_out = False
        inbound = SimMessage(new_sid("SM"), service_number, phone.number, body, "inbound")
        inbound.set_status("received")
        self.messages[inbound.sid] = inbound
        phone.sent.append(inbound)
        self.changes.notify()
        bodies = await post_inbound_sms(self.carrier, inbound, self.sms_webhook_url)
        for text in bodies:
            reply = SimMessage(new_sid("SM"), phone.number, service_number, text, "outbound-reply")
            reply.set_status("delivered")
            self.messages[reply.sid] = reply
            phone.add_message(reply)
        return bodies

    def connect(self, carrier: Carrier) -> None:
        """Give the simulator its way to reach the service (at start-up)."""
        self._carrier = carrier

    async def disconnect(self) -> None:
        """Stop every running message and call flow, then forget the carrier (at shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._carrier = None

    def _spawn(self, flow: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(flow)
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("sim_flow_crashed", exc_info=error)
