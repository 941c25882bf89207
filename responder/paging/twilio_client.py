"""The Twilio adapter: the only module that talks to Twilio's REST API (through the official SDK)."""

from __future__ import annotations

import asyncio
import base64
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from responder.logging import get_logger, mask_phones

log = get_logger(__name__)

# By default, a request to Twilio that takes longer than this is abandoned and retried (seconds).
SEND_DEADLINE_S = 10.0
# Twilio drops an SMS it could not hand on within this time, so a stale page never arrives late.
SMS_VALIDITY_S = 300
# Statuses Twilio reports for a call; we ask for every progress event so failures are news at once.
CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


@dataclass(frozen=True)
class Sent:
    sid: str
    status: str


@dataclass(frozen=True)
class Fetched:
    status: str
    error_code: int | None
    answered_by: str | None


class SendFailed(Exception):
    """Twilio refused or could not be reached; `retryable` says whether to try the same send again."""

    def __init__(self, reason: str, *, status: int | None, code: int | None, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code
        self.retryable = retryable


class TwilioGateway:
    """Sends SMS and places calls; create it inside the running event loop, close it on shutdown."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base: str,
        timeout_s: float = SEND_DEADLINE_S,
    ) -> None:
        self.from_number = from_number
        self.timeout_s = timeout_s
        # The SDK's own retries would repeat POSTs blindly (a duplicate page); ours decide instead.
        self._http = AsyncTwilioHttpClient(max_retries=None)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._client.api.base_url = api_base

    async def send_sms(self, to: str, body: str, status_callback: str | None) -> Sent:
        """An SMS; `status_callback` None for notices nobody tracks (a hand-off)."""
        extra: dict[str, Any] = {"status_callback": status_callback} if status_callback else {}
        return await self._call(
            self._client.messages.create_async(
                to=to, from_=self.from_number, body=body, validity_period=SMS_VALIDITY_S, **extra
            )
        )

    async def place_call(self, to: str, twiml_url: str, status_callback: str) -> Sent:
        return await self._call(
            self._client.calls.create_async(
                to=to,
                from_=self.from_number,
                url=twiml_url,
                method="POST",
                status_callback=status_callback,
                status_callback_event=CALL_EVENTS,
                status_callback_method="POST",
                # Wait for the greeting to end so a voicemail is left after the beep, not over the greeting.
                machine_detection="DetectMessageEnd",
            )
        )

    async def _call(self, request: object) -> Sent:
        try:
            async with asyncio.timeout(self.timeout_s):
                resource = await request  # type: ignore[misc]  # an SDK coroutine
        except TwilioRestException as exc:
            retryable = exc.status == 429 or exc.status >= 500
            # Twilio's message may quote the number ("The 'To' number +336... is not valid"): it is
            # stored on the page and the timeline, so the number is masked first.
            reason = mask_phones(str(exc.msg))
            raise SendFailed(reason, status=exc.status, code=exc.code, retryable=retryable) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise SendFailed(
                f"Twilio unreachable: {type(exc).__name__}", status=None, code=None, retryable=True
            ) from exc
        except Exception as exc:
            # An SDK surprise must not strand the page: report it and let the outbox retry.
            log.exception("twilio_client_crashed")
            raise SendFailed(
                f"Twilio client error: {type(exc).__name__}", status=None, code=None, retryable=True
            ) from exc
        return Sent(sid=str(resource.sid), status=str(resource.status))

    async def fetch_status(self, channel: str, sid: str) -> Fetched:
        """Twilio's view of a message or call now (for callbacks that never came)."""
        resource = self._client.calls(sid) if channel == "voice" else self._client.messages(sid)
        try:
            async with asyncio.timeout(self.timeout_s):
                found = await resource.fetch_async()
        except TwilioRestException as exc:
            raise SendFailed(
                mask_phones(str(exc.msg)), status=exc.status, code=exc.code, retryable=True
            ) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise SendFailed(
                f"Twilio unreachable: {type(exc).__name__}", status=None, code=None, retryable=True
            ) from exc
        code = getattr(found, "error_code", None)
        return Fetched(
            status=str(found.status),
            error_code=int(code) if code not in (None, "") else None,
            answered_by=getattr(found, "answered_by", None),
        )

    async def close(self) -> None:
        await self._http.close()


class SignatureChecker:
    """Checks X-Twilio-Signature on our public URL; accepts the current or the previous auth token."""

    def __init__(self, auth_tokens: list[str]) -> None:
        self._tokens = [token.encode() for token in auth_tokens if token]
        self._validators = [RequestValidator(token) for token in auth_tokens if token]

    def is_valid(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        if not signature:
            return False
        # The URL exactly as we know it first: the text Twilio signs (the URL, then each parameter's
        # name and value, sorted) built once, one HMAC-SHA1 per token. The SDK's validate() always
        # signs it twice (with and without the port, for a proxy that changed it); it is the fallback.
        signed = _signed_text(url, params)
        given = signature.encode()
        if any(
            hmac.compare_digest(base64.b64encode(hmac.digest(token, signed, "sha1")), given)
            for token in self._tokens
        ):
            return True
        return any(v.validate(url, params, signature) for v in self._validators)


def _signed_text(url: str, params: Mapping[str, str]) -> bytes:
    """What Twilio's X-Twilio-Signature is the HMAC of (as the SDK's compute_signature builds it)."""
    getall = getattr(params, "getall", None)
    parts = [url]
    for name in sorted(set(params)):
        values = getall(name) if getall is not None else [params[name]]
        parts += (name + value for value in sorted(set(values)))
    return "".join(parts).encode()
