"""Per-phone limits: protection against floods that never delays a crisis page silently.

Over the limit, a page is not held back for later: it fails at once as "throttled", which moves the
chain to its next step (the next person), and the timeline says why. Counted per process.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta


class PhoneThrottle:
    """At most `limit` messages and calls to one person within `window_s` (0 turns it off)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window = limit, timedelta(seconds=window_s)
        self._sent: dict[str, deque[datetime]] = {}

    def allow(self, person_id: str, now: datetime) -> bool:
        """Whether one more may go now; counts it when it may."""
        if self.limit <= 0:
            return True
        sent = self._sent.setdefault(person_id, deque())
        while sent and sent[0] <= now - self.window:
            sent.popleft()
        if len(sent) >= self.limit:
            return False
        sent.append(now)
        return True

    def describe(self) -> str:
        return f"throttled: over {self.limit} pages to this phone in {self.window.total_seconds():g}s"
