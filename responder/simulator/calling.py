"""Voice flow: ring a phone, answer (or not), follow the service's TwiML, report call progress."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import structlog

from responder.simulator.carrier import Carrier, Params, WebhookError
from responder.simulator.resources import API_VERSION, rfc2822
from responder.simulator.state import SimCall, utc_now
from responder.simulator.twiml import (
    Gather,
    Hangup,
    Pause,
    Play,
    Redirect,
    Say,
    TwimlError,
    Unsupported,
    Verb,
    parse_voice,
)

log = structlog.get_logger(__name__)

# What Twilio plays when the TwiML cannot be fetched or parsed, before hanging up.
APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."

# The StatusCallbackEvent that reports each call status.
_EVENT_OF_STATUS = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}


@dataclass(frozen=True)
class _Document:
    """A TwiML document and the URL it came from (None for inline TwiML), for relative URLs."""

    url: str | None
    verbs: list[Verb]


class CallRun:
    """Runs one call from queued to its final status; create it and await run() in a task."""

    def __init__(self, carrier: Carrier, call: SimCall) -> None:
        self._carrier = carrier
        self._call = call
        self._sequence = itertools.count()

    async def run(self) -> None:
        """Ring, then either end busy/no-answer/failed or answer, follow the TwiML and complete."""
        setup = self._call.setup
        await self._advance("initiated")
        await self._advance("ringing")
        if setup.outcome in ("busy", "no-answer", "failed"):
            await self._advance(setup.outcome)
            return
        if setup.machine_detection:
            self._call.answered_by = "machine_start" if setup.outcome == "machine" else "human"
        await self._advance("in-progress")
        await self._follow_twiml()
        await self._advance("completed")

    async def _advance(self, status: str) -> None:
        await self._carrier.step()
        self._call.set_status(status)
        event = _EVENT_OF_STATUS.get(status, "completed")
        if event in self._call.setup.events:
            await self._report(event)

    async def _report(self, event: str) -> None:
        setup = self._call.setup
        if setup.status_callback is None:
            return
        params = self._call_params()
        status = self._call.status
        params += [
            ("SequenceNumber", str(next(self._sequence))),
            ("Timestamp", rfc2822(utc_now()) or ""),
            ("CallbackSource", "call-progress-events"),
        ]
        if event == "completed":
            params.append(("CallDuration", str(self._call.duration_s or 0)))
        try:
            await self._carrier.webhooks.send(setup.status_callback_method, setup.status_callback, params)
        except WebhookError as exc:
            self._call.errors.append(str(exc))
            log.warning("sim_call_callback_failed", call_sid=self._call.sid, error=str(exc))
            return
        self._call.note_reported(status)

    def _call_params(self) -> Params:
        call = self._call
        params = [
            ("CallSid", call.sid),
            ("AccountSid", self._carrier.account_sid),
            ("From", call.from_),
            ("To", call.to),
            ("CallStatus", call.status),
            ("Direction", "outbound-api"),
            ("ApiVersion", API_VERSION),
        ]
        if call.answered_by is not None:
            params.append(("AnsweredBy", call.answered_by))
        return params

    async def _follow_twiml(self) -> None:
        setup = self._call.setup
        try:
            if setup.twiml is not None:
                document: _Document | None = _Document(None, parse_voice(setup.twiml))
            else:
                document = await self._fetch(setup.url, setup.method, [])
            while document is not None:
                document = await self._execute(document)
        except (WebhookError, TwimlError) as exc:
            self._call.errors.append(str(exc))
            log.warning("sim_call_twiml_failed", call_sid=self._call.sid, error=str(exc))
            self._call.hear(APPLICATION_ERROR)

    async def _fetch(self, url: str | None, method: str, extra: Params) -> _Document:
        if url is None:
            raise TwimlError("no URL to fetch TwiML from")
        text = await self._carrier.webhooks.send(method, url, self._call_params() + extra)
        return _Document(url, parse_voice(text))

    async def _execute(self, document: _Document) -> _Document | None:
        """Play the verbs in order; return the document to go on with (after a key press or redirect)."""
        for verb in document.verbs:
            match verb:
                case Say(text=text):
                    self._call.hear(text)
                case Gather():
                    following = await self._gather(document, verb)
                    if following is not None:
                        return following
                case Redirect(url=url, method=method):
                    return await self._fetch(_resolve(document.url, url), method, [])
                case Hangup():
                    return None
                case Unsupported(tag=tag):
                    self._call.errors.append(f"<{tag}> is not simulated; skipped")
                case Pause() | Play():
                    pass  # nothing to hear in a test, and no need to wait
        return None

    async def _gather(self, document: _Document, gather: Gather) -> _Document | None:
        for prompt in gather.prompts:
            self._call.hear(prompt.text)
        pressed = self._call.open_gather()
        try:
            digits = await asyncio.wait_for(pressed, gather.timeout_s * self._carrier.time_scale)
        except TimeoutError:
            digits = ""
        finally:
            self._call.close_gather()
        if not digits and not gather.action_on_empty_result:
            return None  # Twilio goes on with the verb after <Gather>
        if gather.num_digits is not None:
            digits = digits[: gather.num_digits]
        action = _resolve(document.url, gather.action)
        return await self._fetch(action, gather.method, [("Digits", digits)])


def _resolve(base: str | None, url: str | None) -> str:
    """Resolve a TwiML URL against the document's; a missing one means the document itself."""
    if url is None or url == "":
        if base is None:
            raise TwimlError("inline TwiML needs an absolute action URL")
        return base
    if base is None:
        if not urlsplit(url).scheme:
            raise TwimlError(f"relative URL {url!r} in inline TwiML")
        return url
    return urljoin(base, url)
