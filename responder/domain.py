"""The service's vocabulary in one place: case statuses, page states, roles and channels.

Every module that needs one of these names imports it from here; settings, the store and the
handlers hold none of their own.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

# A case: paging (open), someone has it (acknowledged), closed with an outcome (resolved).
OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
CASE_STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)
# What became of the person, recorded with the resolution (PRODUCT.md §5); retention is set per outcome.
OUTCOMES = (
    "located_safe",
    "deescalated",
    "transported_voluntary",
    "transported_involuntary",
    "medical_intervention",
    "deceased",
    "unable_to_locate",
    "referred_other_jurisdiction",
    "false_positive",
    "duplicate",
    "platform_data_unavailable",
)


class PageState(StrEnum):
    """Where a page (or notice) is in its life, in our words. Twilio's own status for it is kept raw
    beside this (the page's `twilio_status`), and only ever moves a page along the moves below."""

    PENDING = "pending"  # written, waiting for its time (or a retry's); the outbox sends it
    CLAIMED = "claimed"  # an outbox is sending it now (its lease says it is alive)
    SENT = "sent"  # Twilio took it; no news yet of it reaching the phone
    DELIVERED = "delivered"  # it reached the phone: an SMS delivered, a call answered
    FAILED = "failed"  # it did not reach anyone (paging/failures.py says when, once)
    CANCELLED = "cancelled"  # the case was accepted or resolved before it went out


PENDING, CLAIMED = PageState.PENDING, PageState.CLAIMED
PAGE_MOVES: dict[PageState, frozenset[PageState]] = {
    PageState.PENDING: frozenset({PageState.CLAIMED, PageState.CANCELLED}),
    # Back to pending: a retry after Twilio could not take it, or the claim of an outbox that died.
    # Delivered or failed straight away: a status callback can beat the API's answer to the send.
    PageState.CLAIMED: frozenset({PageState.PENDING, PageState.SENT, PageState.DELIVERED, PageState.FAILED}),
    PageState.SENT: frozenset({PageState.DELIVERED, PageState.FAILED}),
    # A call answered, then by a machine, or with no key pressed: it did not reach a person.
    PageState.DELIVERED: frozenset({PageState.FAILED}),
    PageState.FAILED: frozenset(),
    PageState.CANCELLED: frozenset(),
}


def may_move(state: PageState, to: PageState) -> bool:
    """True when a page in `state` may go to `to`."""
    return to in PAGE_MOVES[state]


def moves_into(to: PageState) -> tuple[PageState, ...]:
    """The states a page may come to `to` from (the guard of an UPDATE that moves it there)."""
    return tuple(state for state, targets in PAGE_MOVES.items() if to in targets)


# Who a roster person is on call as (schedules and playbooks page these).
Role = Literal["investigator", "negotiator", "team_lead", "manager", "admin"]
ROSTER_ROLES: tuple[Role, ...] = ("investigator", "negotiator", "team_lead", "manager", "admin")
# What an account may do on the web pages and the API (an auditor is never paged).
ACCOUNT_ROLES = ("negotiator", "investigator", "team_lead", "manager", "admin", "auditor")
ADMIN, AUDITOR = "admin", "auditor"
# Who is paged, and so may be paged for a case or hold one: an account with one of these roles must be
# linked to its roster person, which is how the cases paged to it are known.
PAGED_ROLES = ("negotiator", "investigator")
# Who sees and works every case (on the pages and through the case API).
LEADS = ("team_lead", "manager")
# Who reads the outcome review: the monthly report, CSV export, the review API (team leads also see
# the dashboard, which lists the cases they work).
REVIEWERS = ("manager", AUDITOR)
# Who puts a case on legal hold (its retention suspended) and lifts it.
MANAGER = "manager"
# Who reads schedules and who is on call through the API.
SCHEDULE_READERS = (ADMIN, "manager", "team_lead")

Channel = Literal["sms", "voice"]
CHANNELS: tuple[Channel, ...] = ("sms", "voice")
