"""What follows a failed page: pure rules of (the page, the case, the person's channels), no I/O.

The engine's I/O shell (runner.py) loads the facts, calls these, and applies what they say. Each
rule is tested by a table in tests/test_failover_rules.py.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from responder.paging.contacts import ALL, Meaning


def channel_to_flag(meaning: Meaning | None, page_channel: str) -> str | None:
    """The channel a Twilio error shows dead for this number ("all": the number itself), or None
    when the error says nothing lasting (try again later)."""
    if meaning is None or meaning.channel is None:
        return None
    return ALL if meaning.channel == ALL else page_channel


def next_channel(usable: Sequence[str], tried: Collection[str], flagged_now: str | None) -> str | None:
    """The person's first usable channel not yet tried in this case. `usable` is in the roster's
    order of preference and already leaves out the flags known before; `flagged_now` is the one this
    failure just set (the roster learns it only after the commit)."""
    for channel in usable:
        if flagged_now in (channel, ALL):
            continue
        if channel not in tried:
            return channel
    return None


def cuts_the_wait_short(page_step: int | None, latest_step: int | None) -> bool:
    """Whether a page's failure (or pass) may move the chain on now. Only news about the latest step
    counts: a late failure of an earlier tier's page must not cut short the wait of the tier being
    paged now. A page of no step is not news about the chain."""
    if page_step is None:
        return False
    return latest_step is None or page_step >= latest_step


@dataclass(frozen=True)
class AfterFailure:
    """What a failed page leads to."""

    flag: str | None  # a channel to flag dead for the person (and tell the managers)
    retry_on: str | None  # the person's next channel, paged at once in the same step
    advance: bool  # no channel left: on to the chain (which moves only if the step is the latest)


def after_failure(
    purpose: str,
    case_open: bool,
    page_channel: str,
    page_step: int | None,
    meaning: Meaning | None,
    usable: Sequence[str],
    tried: Collection[str],
) -> AfterFailure:
    """A page (or notice) failed. Flag the channel if the error code says it is dead for that number;
    then try the person's next untried channel at once; only when none is left does the chain move on.
    A notice is never retried on another channel and never moves the chain."""
    flag = channel_to_flag(meaning, page_channel)
    if purpose != "page":
        return AfterFailure(flag, None, advance=False)
    if not case_open or page_step is None:  # the chain decides (fail_over: nothing, or noted as late)
        return AfterFailure(flag, None, advance=True)
    retry_on = next_channel(usable, tried, flag)
    return AfterFailure(flag, retry_on, advance=retry_on is None)
