"""The failover rules as tables: what a failed page leads to, with no database and no clock."""

from __future__ import annotations

import pytest

from responder.engine.failover import (
    AfterFailure,
    after_failure,
    channel_to_flag,
    cuts_the_wait_short,
    next_channel,
)
from responder.paging.contacts import ERROR_MEANINGS, Meaning, meaning_of

LANDLINE, INVALID, UNREACHABLE = meaning_of(30006), meaning_of(21211), meaning_of(30003)


@pytest.mark.parametrize(
    ("meaning", "channel", "flag"),
    [
        (None, "sms", None),  # no code: nothing lasting
        (UNREACHABLE, "sms", None),  # handset unreachable: try again later, flag nothing
        (LANDLINE, "sms", "sms"),  # a landline: its SMS is dead
        (LANDLINE, "voice", "voice"),  # the code speaks of the channel that failed
        (INVALID, "voice", "all"),  # an invalid number: every channel of it
    ],
)
def test_which_channel_an_error_flags(meaning: Meaning | None, channel: str, flag: str | None) -> None:
    assert channel_to_flag(meaning, channel) == flag


@pytest.mark.parametrize(
    ("usable", "tried", "flagged_now", "next_one"),
    [
        (["sms", "voice"], {"sms"}, None, "voice"),  # SMS failed: voice next
        (["sms", "voice"], {"sms", "voice"}, None, None),  # both tried: none left
        (["voice", "sms"], {"voice"}, None, "sms"),  # the roster's order of preference
        (["sms", "voice"], {"sms"}, "voice", None),  # voice flagged by this very failure
        (["sms", "voice"], {"sms"}, "all", None),  # the number is dead
        (["sms", "voice"], set(), "sms", "voice"),  # the flag just set skips the flagged channel
        ([], set(), None, None),  # no usable channel at all
    ],
)
def test_the_next_channel(
    usable: list[str], tried: set[str], flagged_now: str | None, next_one: str | None
) -> None:
    assert next_channel(usable, tried, flagged_now) == next_one


@pytest.mark.parametrize(
    ("page_step", "latest_step", "cuts"),
    [
        (2, 2, True),  # the step being paged now failed: move on now
        (1, 2, False),  # a late failure of an earlier step: the current tier keeps its wait
        (3, 2, True),  # (a step beyond the latest cannot be late)
        (0, None, True),  # the only step
        (None, 2, False),  # a page of no step is no news about the chain
    ],
)
def test_only_news_of_the_latest_step_cuts_the_wait_short(
    page_step: int | None, latest_step: int | None, cuts: bool
) -> None:
    assert cuts_the_wait_short(page_step, latest_step) is cuts


@pytest.mark.parametrize(
    ("purpose", "case_open", "channel", "step", "meaning", "tried", "expected"),
    [
        # An SMS page failed, voice untried: voice at once, same step.
        ("page", True, "sms", 0, UNREACHABLE, {"sms"}, AfterFailure(None, "voice", advance=False)),
        # Both tried: the chain moves on.
        ("page", True, "voice", 1, None, {"sms", "voice"}, AfterFailure(None, None, advance=True)),
        # A landline: SMS flagged dead, voice at once.
        ("page", True, "sms", 0, LANDLINE, {"sms"}, AfterFailure("sms", "voice", advance=False)),
        # An invalid number: flagged, nothing else to try, the chain moves on.
        ("page", True, "sms", 0, INVALID, {"sms"}, AfterFailure("all", None, advance=True)),
        # A notice failed: flag what the code says, never retried, never moves the chain.
        ("notice", True, "sms", None, LANDLINE, {"sms"}, AfterFailure("sms", None, advance=False)),
        # The case was accepted meanwhile: nothing to retry; the chain (closed) decides.
        ("page", False, "sms", 0, None, {"sms"}, AfterFailure(None, None, advance=True)),
    ],
)
def test_what_a_failed_page_leads_to(
    purpose: str,
    case_open: bool,
    channel: str,
    step: int | None,
    meaning: Meaning | None,
    tried: set[str],
    expected: AfterFailure,
) -> None:
    assert after_failure(purpose, case_open, channel, step, meaning, ["sms", "voice"], tried) == expected


def test_every_known_error_code_has_a_reason() -> None:
    assert all(meaning.reason for meaning in ERROR_MEANINGS.values())
