"""How strong a secret must be, and when a public URL is a risk: pure rules, used by `serve` (which
refuses) and `check` (which warns). No message ever quotes a secret."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

# 32 random characters are about 190 bits from a base64 alphabet: out of reach of any guessing over
# the network, and what `openssl rand -base64 32` (44 characters) or `secrets.token_urlsafe(32)` give.
MIN_SECRET_CHARS = 32
# Standard Webhooks secrets are 24 to 64 random bytes (the specification's floor).
MIN_WEBHOOK_SECRET_BYTES = 24
# A plain-http public URL is fine on the machine itself: the demo and the tests.
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
HOW_TO_MAKE_ONE = "make one with `openssl rand -base64 32`"


def short_secret(value: str) -> str | None:
    """Why a shared secret is too weak, or None (an empty one is a choice, not a weak secret)."""
    if value and len(value) < MIN_SECRET_CHARS:
        return f"too short: use at least {MIN_SECRET_CHARS} random characters ({HOW_TO_MAKE_ONE})"
    return None


def weak_webhook_secret(value: str) -> str | None:
    """Why a `whsec_` secret is too weak or malformed, or None."""
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return "must be whsec_ followed by base64"
    if len(key) < MIN_WEBHOOK_SECRET_BYTES:
        return (
            f"the base64 after whsec_ must decode to at least {MIN_WEBHOOK_SECRET_BYTES} random bytes "
            "(ask the platform for a new secret)"
        )
    return None


def insecure_public_url(url: str) -> str | None:
    """Why a public URL puts logins and links at risk, or None."""
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        return (
            "http:// sends passwords, session cookies and one-time links in clear: put the service "
            "behind https:// (plain http is fine only on localhost)"
        )
    return None
