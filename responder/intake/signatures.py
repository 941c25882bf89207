"""Standard Webhooks signature checks: which integration signed this body, if any."""

from __future__ import annotations

import binascii
from collections.abc import Mapping

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from responder.errors import BadSignature, InvalidJSON

_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class SignatureVerifier:
    """Holds one Standard Webhooks verifier per integration secret."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._hooks = {name: Webhook(secret) for name, secret in secrets.items()}

    def integration_for(self, body: bytes, headers: Mapping[str, str]) -> str:
        """The integration whose secret signed the body; BadSignature says why none did."""
        missing = [h for h in _HEADERS if not headers.get(h)]
        if missing:
            raise BadSignature(f"missing header(s): {', '.join(missing)}")
        wanted = {h: headers[h] for h in _HEADERS}
        if not wanted["webhook-timestamp"].strip().isdigit():
            raise BadSignature("webhook-timestamp: must be Unix seconds")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON("body is not UTF-8 JSON") from exc
        for name, hook in self._hooks.items():
            try:
                hook.verify(text, wanted, json_parse=False)
            except WebhookVerificationError as exc:
                message = str(exc)
                if "timestamp" in message.lower() or "Invalid Signature Headers" in message:
                    raise BadSignature(f"webhook-timestamp: {message.lower()} (5-minute tolerance)") from exc
                continue
            except (ValueError, binascii.Error) as exc:
                raise BadSignature("webhook-signature: malformed, expected 'v1,<base64>'") from exc
            return name
        raise BadSignature("webhook-signature: does not match any integration's secret")
