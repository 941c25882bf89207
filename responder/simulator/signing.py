"""Twilio's request signature (``X-Twilio-Signature``), computed without the twilio SDK."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

SIGNATURE_HEADER = "X-Twilio-Signature"


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """Sign a request the simulator is about to send, as Twilio does.

    The signed string is the full URL (with its query string) followed by every POST parameter's
    name and value, sorted by name (and by value for repeated names); GET requests pass no params.
    """
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
