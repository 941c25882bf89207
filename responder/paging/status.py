"""Twilio delivery statuses: their order, which ones mean the page failed, and the state of ours
(domain.PageState) each one brings a page to."""

from __future__ import annotations

from responder.domain import PageState

# Statuses only move forward; a late or repeated callback with a lower rank changes nothing.
RANK = {
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


# Twilio has it, and says nothing yet of the phone; then it reached the phone (a call answered counts:
# a machine or no key pressed fails it afterwards, paging/failures.py).
_REACHED = frozenset({"in-progress", "delivered", "read", "completed"})


def state_of(status: str) -> PageState | None:
    """The state a page goes to on this Twilio status; None for a status we do not know (kept raw)."""
    if status in FAILED:
        return PageState.FAILED
    if status in _REACHED:
        return PageState.DELIVERED
    return PageState.SENT if status in RANK else None


def moves_forward(current: str | None, new: str) -> bool:
    """True when `new` is news after Twilio's `current` status (unknown ones are news once)."""
    return RANK.get(new, 5) > (RANK.get(current, 0) if current else 0)


def is_machine(answered_by: str | None) -> bool:
    return bool(answered_by) and str(answered_by).startswith(MACHINE)
