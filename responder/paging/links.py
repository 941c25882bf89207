"""One-time accept links: signed, bound to the paged person, expiring; single use is kept in the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

from responder.errors import Forbidden, Gone

# How long an accept link works after the page is sent (seconds).
LINK_TTL_S = 15 * 60


class LinkSigner:
    """Makes and checks tokens of the form PAGE.EXPIRY.SIGNATURE."""

    def __init__(self, secret: str, ttl_s: float = LINK_TTL_S) -> None:
        self._key = secret.encode()
        self.ttl_s = ttl_s

    def _sign(self, page_id: str, person_id: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{page_id}.{person_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")[:32]

    def make(self, page_id: str, person_id: str, now: datetime) -> str:
        expires = int(now.timestamp() + self.ttl_s)
        return f"{page_id}.{expires}.{self._sign(page_id, person_id, expires)}"

    @staticmethod
    def page_of(token: str) -> str:
        """The page id a token claims (not yet trusted); Forbidden when it is malformed."""
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            raise Forbidden("link: malformed")
        return parts[0]

    def check(self, token: str, person_id: str, now: datetime) -> str:
        """The page id when the token is genuine for this person and unexpired."""
        page_id = self.page_of(token)
        expires = int(token.split(".")[1])
        if not hmac.compare_digest(token.split(".")[2], self._sign(page_id, person_id, expires)):
            raise Forbidden("link: signature does not match")
        if now.timestamp() > expires:
            raise Gone("link: expired; reply ACK by SMS instead")
        return page_id
