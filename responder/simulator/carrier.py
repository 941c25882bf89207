"""The simulated network's side of the wire: signed webhooks to the service and the pace of events."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import aiohttp
from yarl import URL

from responder.simulator.signing import SIGNATURE_HEADER, compute_signature

# Twilio gives up on a webhook after 15 s.
WEBHOOK_TIMEOUT_S = 15.0

Params = list[tuple[str, str]]


@dataclass(frozen=True)
class SentWebhook:
    """One request as it went over the wire: what someone capturing traffic could send again."""

    method: str
    url: str
    params: Params
    signature: str
    answer: str


class WebhookError(Exception):
    """A webhook could not be delivered or was answered with a non-2xx status."""


class WebhookClient:
    """Sends form-encoded, Twilio-signed requests over one shared aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, auth_token: str) -> None:
        self._session = session
        self._auth_token = auth_token
        # Requests answered 2xx, oldest first, the latest few hundred: what a replay test sends again.
        self.sent: deque[SentWebhook] = deque(maxlen=500)

    async def send(self, method: str, url: str, params: Params) -> str:
        """POST ``params`` as a form (or GET them in the query string) to ``url``; return the body text.

        Raises WebhookError when the service cannot be reached or answers with a non-2xx status.
        """
        target = URL(url)
        if method.upper() == "GET":
            target = target.extend_query(params)
            signed_params: Params = []
        else:
            signed_params = params
        # The service rebuilds the URL from the request line: sign the normalized URL we really send.
        signature = compute_signature(self._auth_token, str(target), signed_params)
        text = await self._request(method.upper(), str(target), signed_params, signature)
        self.sent.append(SentWebhook(method.upper(), str(target), signed_params, signature, text))
        return text

    async def replay(self, sent: SentWebhook) -> tuple[int, str]:
        """Send a captured request again, byte for byte the same (signature included)."""
        async with self._session.request(
            sent.method,
            URL(sent.url, encoded=True),
            data=sent.params or None,
            headers={SIGNATURE_HEADER: sent.signature},
            timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S),
        ) as response:
            return response.status, await response.text()

    async def _request(self, method: str, target: str, signed_params: Params, signature: str) -> str:
        headers = {SIGNATURE_HEADER: signature}
        try:
            async with self._session.request(
                method,
                URL(target, encoded=True),
                data=signed_params or None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S),
            ) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WebhookError(f"{method} {target} failed: {exc!r}") from exc
        if not 200 <= response.status < 300:
            raise WebhookError(f"{method} {target} answered {response.status}: {text[:200]}")
        return text


@dataclass(frozen=True)
class Carrier:
    """What message and call flows need from a running simulator: webhooks, identity and timing."""

    webhooks: WebhookClient
    account_sid: str
    step_delay_s: float  # between two status changes of a message or call
    time_scale: float  # multiplies TwiML waits (<Gather timeout>), so tests need not wait 5 s

    async def step(self) -> None:
        """Let time pass between two status changes, as a real network would."""
        await asyncio.sleep(self.step_delay_s)
