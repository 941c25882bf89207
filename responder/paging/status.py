"""Twilio delivery statuses: their order, and which ones mean the page failed."""

from __future__ import annotations

# Statuses only move forward; a late or repeated callback with a lower rank changes nothing.
RANK = {
    "pending": 0,
    "claimed": 1,
    "queued": 2,
    "accepted": 2,
    "initiated": 3,
    "sending": 3,
    "sent": 4,
    "ringing": 4,
    "in-progress": 5,
    "delivered": 6,
    "read": 6,
    "completed": 7,
    "undelivered": 7,
    "failed": 7,
    "busy": 7,
    "no-answer": 7,
    "canceled": 7,
}
FAILED = frozenset({"failed", "undelivered", "busy", "no-answer", "canceled"})
FINAL = frozenset({"completed", "delivered", "read", *FAILED})
MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax")


def moves_forward(current: str, new: str) -> bool:
    """True when `new` is news after `current` (unknown statuses are taken as news once)."""
    return RANK.get(new, 5) > RANK.get(current, 0)


def is_machine(answered_by: str | None) -> bool:
    return bool(answered_by) and str(answered_by).startswith(MACHINE)
