"""A playbook compiled into numbered steps with offsets from the start of the paging chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from responder.domain import Role
from responder.engine.playbook import Channel, Match, Playbook, Target, chain_ids


@dataclass(frozen=True)
class Step:
    """One thing the chain does at `offset_s`: page a tier on one channel, or page all hands."""

    index: int
    offset_s: float
    kind: Literal["page", "all_hands"]
    tier: str
    pass_no: int
    channels: tuple[Channel, ...]
    targets: tuple[Target, ...] = ()
    roles: tuple[Role, ...] = ()
    notify: tuple[Role, ...] = ()
    when: Match | None = None
    if_done: str | None = None
    unless_done: str | None = None


@dataclass(frozen=True)
class Plan:
    """Finite steps for every pass, then all-hands repeating every `every_s` until someone accepts."""

    playbook: Playbook
    steps: tuple[Step, ...]
    exhausted_at_s: float
    every_s: float

    @property
    def name(self) -> str:
        return self.playbook.name

    def step(self, index: int) -> Step:
        if index < len(self.steps):
            return self.steps[index]
        repeat = index - len(self.steps)
        exhausted = self.playbook.paging.exhausted
        return Step(
            index=index,
            offset_s=self.exhausted_at_s + repeat * self.every_s,
            kind="all_hands",
            tier="all-hands",
            pass_no=repeat,
            channels=exhausted.channels,
            roles=exhausted.page_all,
            notify=exhausted.notify,
        )


def compile_plan(playbook: Playbook) -> Plan:
    """Flatten passes by tiers by channels into steps. Offsets are the playbook's own seconds, on
    the case clock (the demo compresses time with a scaled clock, not here)."""
    tiers = {t.id: t for t in playbook.paging.tiers}
    order = chain_ids(playbook.paging.tiers)
    steps: list[Step] = []
    start_s = 0.0
    for pass_no in range(playbook.paging.repeat + 1):
        for tier_id in order:
            tier = tiers[tier_id]
            for channel in sorted(tier.channels, key=lambda c: c.after):
                steps.append(
                    Step(
                        index=len(steps),
                        offset_s=start_s + channel.after,
                        kind="page",
                        tier=tier.id,
                        pass_no=pass_no,
                        channels=(channel.channel,),
                        targets=tier.targets,
                        when=tier.when,
                        if_done=tier.if_done,
                        unless_done=tier.unless_done,
                    )
                )
            start_s += tier.ack_timeout
    return Plan(
        playbook=playbook,
        steps=tuple(steps),
        exhausted_at_s=start_s,
        every_s=playbook.paging.exhausted.every,
    )
