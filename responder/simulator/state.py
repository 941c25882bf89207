"""The simulated world: phones, the messages and calls they receive, and a way to wait on changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from responder.clock import utcnow
from responder.simulator.behaviour import Behaviour, CallOutcome

T = TypeVar("T")

# Statuses after which a call never changes again.
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
# How long an expect_* waits by default for something that must happen. It only bounds a run where it
# never happens: on a busy machine things come late, and a short wait would turn that into a failure.
WAIT_S = 30.0


def utc_now() -> datetime:
    """The simulator's clock (wall time: the simulator mirrors a real network)."""
    return utcnow()


class Changes:
    """Wakes every waiter whenever simulator state changes; waiters then re-check what they wait for."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Call after every state change. set() resolves current waiters; clear() re-arms the event."""
        self._event.set()
        self._event.clear()

    async def wait_for(self, found: Callable[[], T | None], timeout_s: float) -> T | None:
        """Return ``found()`` once it is not None, or None when ``timeout_s`` passes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (result := found()) is None:
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                return None
            try:
                await asyncio.wait_for(self._event.wait(), remaining_s)
            except TimeoutError:
                return found()
        return result


@dataclass(eq=False)
class SimMessage:
    """One SMS: sent by the service to a phone (outbound-api / outbound-reply) or by a phone (inbound)."""

    sid: str
    to: str
    from_: str
    body: str
    direction: str
    status: str = "queued"
    status_callback: str | None = None
    error_code: int | None = None
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
    sent_at: datetime | None = None
    received_at: datetime | None = None
    errors: list[str] = field(default_factory=list)
    consumed: bool = False
    # The statuses whose callback the service answered with a 2xx, in order (see Phone.expect_reported).
    reported: list[str] = field(default_factory=list)

    def set_status(self, status: str) -> None:
        """Move the message to ``status``, stamping the times Twilio reports."""
        self.status = status
        self.updated_at = utc_now()
        if status == "sent":
            self.sent_at = self.updated_at
        if status in ("delivered", "received"):
            self.received_at = self.updated_at


@dataclass(frozen=True)
class CallSetup:
    """What the service asked for when it created a call, and what the phone will do."""

    url: str | None
    method: str
    twiml: str | None
    status_callback: str | None
    status_callback_method: str
    events: frozenset[str]
    machine_detection: bool
    outcome: CallOutcome


@dataclass(eq=False)
class SimCall:
    """One outbound call to a phone; a test drives it with expect_prompt / press / expect_status."""

    sid: str
    to: str
    from_: str
    setup: CallSetup
    changes: Changes = field(repr=False)
    status: str = "queued"
    statuses: list[str] = field(default_factory=lambda: ["queued"])  # every status, in order
    answered_by: str | None = None
    said: list[str] = field(default_factory=list)
    prompt: list[str] = field(default_factory=list)
    waiting_for_digits: bool = False
    pressed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    consumed: bool = False
    # The statuses whose callback the service answered with a 2xx, in order (see expect_reported).
    reported: list[str] = field(default_factory=list)
    _gathers_opened: int = field(default=0, init=False, repr=False)
    _digits: asyncio.Future[str] | None = field(default=None, init=False, repr=False)

    @property
    def duration_s(self) -> int | None:
        """Whole seconds between answer and hang-up (0 if never answered), None while running."""
        if self.end_time is None:
            return None
        if self.start_time is None:
            return 0
        return int((self.end_time - self.start_time).total_seconds())

    def set_status(self, status: str) -> None:
        """Move the call to ``status``; answering starts the clock and a final status stops it."""
        self.status = status
        self.statuses.append(status)
        self.updated_at = utc_now()
        if status == "in-progress":
            self.start_time = self.updated_at
        if status in FINAL_CALL_STATUSES:
            self.end_time = self.updated_at
        self.changes.notify()

    def note_reported(self, status: str) -> None:
        """Record that the service answered the status callback for ``status`` with a 2xx."""
        self.reported.append(status)
        self.changes.notify()

    async def expect_reported(self, status: str, timeout_s: float = WAIT_S) -> None:
        """Wait until the service has answered the callback reporting ``status``: whatever the service
        does with that news before it answers (record it, fail over) is done by then."""
        done = await self.changes.wait_for(lambda: True if status in self.reported else None, timeout_s)
        if done is None:
            raise AssertionError(
                f"call {self.sid}: no answered {status!r} callback within {timeout_s}s "
                f"(answered: {self.reported}): {self.describe()}"
            )

    def hear(self, text: str) -> None:
        """Record a <Say> the phone heard."""
        self.said.append(text)
        self.prompt.append(text)
        self.changes.notify()

    def open_gather(self) -> asyncio.Future[str]:
        """Start waiting for keys; the runner awaits the returned future (press() resolves it)."""
        self._digits = asyncio.get_running_loop().create_future()
        self._gathers_opened += 1
        self.waiting_for_digits = True
        self.changes.notify()
        return self._digits

    def close_gather(self) -> None:
        """Stop waiting for keys (pressed or timed out); the next prompt starts empty."""
        self._digits = None
        self.waiting_for_digits = False
        self.prompt = []
        self.changes.notify()

    async def expect_prompt(self, timeout_s: float = WAIT_S) -> str:
        """Wait until the call waits for keys; return the <Say> texts heard since the last key press."""
        ready = await self.changes.wait_for(
            lambda: True if self.waiting_for_digits or self.status in FINAL_CALL_STATUSES else None,
            timeout_s,
        )
        if not self.waiting_for_digits:
            why = "ended" if ready else f"did not ask for keys within {timeout_s}s"
            raise AssertionError(f"call {self.sid} {why}: {self.describe()}")
        return " ".join(self.prompt)

    async def press(self, digits: str, timeout_s: float = WAIT_S) -> str:
        """Press keys in the open <Gather>; return what the phone hears until the next prompt or hang-up."""
        if self.setup.outcome == "machine":
            raise AssertionError(f"call {self.sid} was answered by a machine, which presses no keys")
        if self._digits is None or self._digits.done():
            raise AssertionError(f"call {self.sid} is not waiting for keys: {self.describe()}")
        heard_before, gathers_before = len(self.said), self._gathers_opened
        self.pressed.append(digits)
        self._digits.set_result(digits)
        done = await self.changes.wait_for(
            lambda: (
                True
                if self.status in FINAL_CALL_STATUSES
                or (self.waiting_for_digits and self._gathers_opened > gathers_before)
                else None
            ),
            timeout_s,
        )
        if done is None:
            raise AssertionError(f"call {self.sid} did not go on after {digits!r}: {self.describe()}")
        return " ".join(self.said[heard_before:])

    async def expect_status(self, status: str, timeout_s: float = WAIT_S) -> None:
        """Wait until the call reaches (or has passed through) ``status``; fail at once if it ends without."""
        await self.changes.wait_for(
            lambda: True if status in self.statuses or self.status in FINAL_CALL_STATUSES else None,
            timeout_s,
        )
        if status not in self.statuses:
            raise AssertionError(f"call {self.sid} is not {status!r}: {self.describe()}")

    def describe(self) -> str:
        """One line for assertion messages."""
        return f"status={self.status} said={self.said} errors={self.errors}"


class SmsGateway(Protocol):
    """Where a phone's own texts go (the simulator posts them to the service's SMS webhook)."""

    async def receive_sms(self, phone: Phone, body: str) -> list[str]: ...


class Phone:
    """A person's phone: an inbox, the calls it got, and how it behaves. Get one with sim.phone()."""

    def __init__(self, number: str, gateway: SmsGateway, changes: Changes) -> None:
        self.number = number
        self.messages: list[SimMessage] = []  # delivered to this phone, oldest first
        self.undelivered: list[SimMessage] = []  # addressed to it but undelivered or failed
        self.sent: list[SimMessage] = []  # texts this phone sent to the service
        self.calls: list[SimCall] = []
        self.opted_out = False  # texted STOP: Twilio refuses SMS to it (21610) until START
        self._gateway = gateway
        self._changes = changes
        self._behaviour = Behaviour()
        self._api_errors_left = 0
        self.api_errors_given = 0  # create requests to this phone refused by api_error, so far

    @property
    def behaviour(self) -> Behaviour:
        return self._behaviour

    @behaviour.setter
    def behaviour(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour
        self._api_errors_left = behaviour.api_error_count if behaviour.api_error else 0

    def take_api_error(self) -> int | None:
        """The HTTP status the next create request to this phone must fail with, if any (counts down)."""
        if self._api_errors_left <= 0 or self._behaviour.api_error is None:
            return None
        self._api_errors_left -= 1
        self.api_errors_given += 1
        self._changes.notify()
        return self._behaviour.api_error

    async def expect_api_errors(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait until `count` create requests to this phone have been refused by its api_error."""
        done = await self._changes.wait_for(
            lambda: True if self.api_errors_given >= count else None, timeout_s
        )
        if done is None:
            raise AssertionError(
                f"{self.number}: {self.api_errors_given} of {count} API errors in {timeout_s}s"
            )

    def add_message(self, message: SimMessage) -> None:
        """File a message addressed to this phone, once it is final (delivered or not)."""
        inbox = self.messages if message.status in ("delivered", "received") else self.undelivered
        inbox.append(message)
        self._changes.notify()

    def add_call(self, call: SimCall) -> None:
        """Let the phone ring."""
        self.calls.append(call)
        self._changes.notify()

    def note_reported(self, message: SimMessage, status: str) -> None:
        """Record that the service answered the status callback for ``status`` of ``message`` (2xx)."""
        message.reported.append(status)
        self._changes.notify()

    async def expect_reported(self, message: SimMessage, status: str, timeout_s: float = WAIT_S) -> None:
        """Wait until the service has answered the callback reporting ``status`` for ``message``:
        whatever the service does with that news before it answers (record it, fail over) is done."""
        done = await self._changes.wait_for(lambda: True if status in message.reported else None, timeout_s)
        if done is None:
            raise AssertionError(
                f"{self.number}: no answered {status!r} callback for {message.sid} within {timeout_s}s "
                f"(answered: {message.reported}, errors: {message.errors})"
            )

    async def expect_sms(self, contains: str = "", timeout_s: float = WAIT_S) -> SimMessage:
        """Wait for the next unread SMS whose body contains ``contains`` (any case); mark it read."""
        wanted = contains.casefold()
        message = await self._changes.wait_for(
            lambda: next((m for m in self.messages if not m.consumed and wanted in m.body.casefold()), None),
            timeout_s,
        )
        if message is None:
            inbox = [(m.body, "read" if m.consumed else "unread") for m in self.messages]
            raise AssertionError(
                f"{self.number} got no SMS containing {contains!r} within {timeout_s}s; inbox: {inbox}"
            )
        message.consumed = True
        return message

    async def expect_call(self, timeout_s: float = WAIT_S) -> SimCall:
        """Wait for the next call to this phone not yet returned by expect_call."""
        call = await self._changes.wait_for(
            lambda: next((c for c in self.calls if not c.consumed), None), timeout_s
        )
        if call is None:
            raise AssertionError(f"{self.number} got no new call within {timeout_s}s; calls: {self.calls}")
        call.consumed = True
        return call

    async def expect_no_sms(self, contains: str, timeout_s: float) -> None:
        """Assert that no unread SMS containing ``contains`` arrives within ``timeout_s``."""
        wanted = contains.casefold()
        message = await self._changes.wait_for(
            lambda: next((m for m in self.messages if not m.consumed and wanted in m.body.casefold()), None),
            timeout_s,
        )
        if message is not None:
            raise AssertionError(f"{self.number} got {message.body!r} within {timeout_s}s")

    async def expect_no_call(self, timeout_s: float) -> None:
        """Assert that no new call rings this phone for ``timeout_s`` (a quiet phone is the point)."""
        call = await self._changes.wait_for(
            lambda: next((c for c in self.calls if not c.consumed), None), timeout_s
        )
        if call is not None:
            raise AssertionError(f"{self.number} was called within {timeout_s}s: {call.describe()}")

    async def expect_nothing(self, timeout_s: float) -> None:
        """Assert that no new SMS and no new call reach this phone for ``timeout_s``."""
        texts, calls = len(self.messages) + len(self.undelivered), len(self.calls)
        news = await self._changes.wait_for(
            lambda: (len(self.messages) + len(self.undelivered) > texts or len(self.calls) > calls) or None,
            timeout_s,
        )
        if news:
            inbox = [m.body for m in self.messages[texts:]]
            raise AssertionError(
                f"{self.number} got news within {timeout_s}s: sms={inbox} calls={self.calls[calls:]}"
            )

    async def send_sms(self, body: str) -> list[str]:
        """Text the service; return the bodies of its TwiML replies (also delivered to this inbox)."""
        return await self._gateway.receive_sms(self, body)
