"""SMS flows: carry a message to a phone with status callbacks, and post a phone's text to the service."""

from __future__ import annotations

import structlog

from responder.simulator.behaviour import Behaviour
from responder.simulator.carrier import Carrier, WebhookError
from responder.simulator.resources import API_VERSION
from responder.simulator.state import Phone, SimMessage
from responder.simulator.twiml import TwimlError, parse_messages

log = structlog.get_logger(__name__)


async def deliver_message(carrier: Carrier, message: SimMessage, phone: Phone, behaviour: Behaviour) -> None:
    """Advance queued → sending → sent → delivered (or undelivered/failed), reporting sent and the end."""
    await carrier.step()
    message.set_status("sending")
    await carrier.step()
    message.set_status("sent")
    if behaviour.callbacks:
        await _report_status(carrier, message, phone)
    await carrier.step()
    if behaviour.sms == "deliver":
        message.set_status("delivered")
    else:
        message.error_code = behaviour.sms_error_code
        message.set_status(behaviour.sms)
    # The handset has it (or not) before Twilio learns so and calls back.
    phone.add_message(message)
    if behaviour.callbacks:
        await _report_status(carrier, message, phone)


async def post_inbound_sms(carrier: Carrier, message: SimMessage, webhook_url: str) -> list[str]:
    """POST a phone's text to the service's SMS webhook; return the bodies of its <Message> replies.

    Raises WebhookError if the service is unreachable, fails, or answers with something that is not TwiML.
    """
    params = [
        ("MessageSid", message.sid),
        ("SmsSid", message.sid),
        ("SmsMessageSid", message.sid),
        ("AccountSid", carrier.account_sid),
        ("From", message.from_),
        ("To", message.to),
        ("Body", message.body),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsStatus", "received"),
        ("ApiVersion", API_VERSION),
    ]
    text = await carrier.webhooks.send("POST", webhook_url, params)
    try:
        return parse_messages(text)
    except TwimlError as exc:
        raise WebhookError(f"POST {webhook_url} answered invalid TwiML: {exc}") from exc


async def _report_status(carrier: Carrier, message: SimMessage, phone: Phone) -> None:
    if message.status_callback is None:
        return
    status = message.status
    params = [
        ("MessageSid", message.sid),
        ("SmsSid", message.sid),
        ("AccountSid", carrier.account_sid),
        ("From", message.from_),
        ("To", message.to),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("ApiVersion", API_VERSION),
    ]
    if message.error_code is not None:
        params.append(("ErrorCode", str(message.error_code)))
    try:
        await carrier.webhooks.send("POST", message.status_callback, params)
    except WebhookError as exc:
        message.errors.append(str(exc))
        log.warning("sim_status_callback_failed", message_sid=message.sid, error=str(exc))
        return
    phone.note_reported(message, status)
