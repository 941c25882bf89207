"""Subjects' pseudonyms: the same person on the same platform gets the same stable key, which says
nothing of who they are without RESPONDER_PSEUDONYM_KEY (a key of its own, not the data keys). The
case page shows a person's earlier cases, and figures can count repeat subjects, by it alone."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonyms:
    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("a pseudonym key is needed")
        self._key = key.encode()

    def of(self, integration: str, account_id: str | None) -> str | None:
        """The subject's pseudonym (hex), or None when the alert names no account."""
        if not account_id:
            return None
        return hmac.new(self._key, f"{integration}\n{account_id}".encode(), hashlib.sha256).hexdigest()
