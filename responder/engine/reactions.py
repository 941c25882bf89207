"""Reactions to alert updates (pure): content went live, a new location hint, a retract."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from responder.engine.playbook import Reaction, Reactions
from responder.oncall.roster import Roster

KINDS = ("went_live", "new_location", "retract")


@dataclass(frozen=True)
class ReactionPlan:
    """What to do about the news: fire the next step now, and whom to tell."""

    repage: bool
    notify: list[str]  # person ids


def react(
    kinds: list[str],
    reactions: Reactions,
    status: str,
    region: str | None,
    holder: str | None,
    roster: Roster,
    now: datetime,
) -> ReactionPlan:
    """Combine the reactions for every kind of news in one update (a retract never stops paging)."""
    repage, notify = False, []
    for kind in kinds:
        reaction: Reaction = getattr(reactions, kind)
        repage = repage or (reaction.repage and status == "open")
        for who in reaction.notify:
            if who == "holder":
                people = [holder] if holder else []
            else:
                people = [p.id for p in roster.everyone_on_call(who, region, now)]
            notify += [person for person in people if person not in notify]
    return ReactionPlan(repage, notify)
