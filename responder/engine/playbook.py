"""Playbooks: YAML files in playbooks/ describing who is paged, how, and when (PRODUCT.md §3).

Loaded and validated at start-up and by `responder check`; errors name file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from responder.domain import Role
from responder.durations import DurationS
from responder.errors import ConfigError
from responder.yamlfile import YamlDoc, field_path, load_yaml, validate_doc

RiskLevel = Literal["imminent", "high", "medium", "low"]
Channel = Literal["sms", "voice"]
# Who a notice goes to: whoever accepted the case, or the on-call people of a role.
Reacting = Literal["holder", "investigator", "negotiator", "team_lead", "manager", "admin"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    """Who a tier pages: a role resolved through on-call for the case's region, a named schedule's
    layer, or one person."""

    role: Role | None = None
    layer: str = "primary"
    person: str | None = None
    schedule: str | None = None  # a named schedule's layer, whatever the case's region

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        if [self.role, self.person, self.schedule].count(None) != 2:
            raise ValueError("give exactly one of 'role', 'schedule' or 'person'")
        return self

    def describe(self) -> str:
        if self.person:
            return f"person {self.person}"
        if self.schedule:
            return f"{self.layer} of schedule {self.schedule}"
        return f"{self.layer} {self.role}"


class ChannelStep(_Strict):
    """One channel of a tier, started `after` the tier starts (SMS at 0, voice at +1m)."""

    channel: Channel
    after: DurationS = 0.0


class Match(_Strict):
    """Selection rule: every key given must match the alert."""

    risk_level: tuple[RiskLevel, ...] = ()
    is_live: bool | None = None
    region: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    integration: tuple[str, ...] = ()

    def holds(self, facts: AlertFacts) -> bool:
        """True when every rule given matches the alert's facts (an empty rule always holds)."""
        region, language = facts.region or "", (facts.language or "").split("-")[0]
        return (
            (not self.risk_level or facts.risk_level in self.risk_level)
            and (self.is_live is None or facts.is_live == self.is_live)
            and (not self.region or any(region == r or region.startswith(r + "-") for r in self.region))
            and (not self.language or language in self.language)
            and (not self.integration or facts.integration in self.integration)
        )


@dataclass(frozen=True)
class AlertFacts:
    """What conditions may look at: the alert's risk, liveness, region, language and platform."""

    risk_level: str
    is_live: bool
    region: str | None
    language: str | None
    integration: str


class Tier(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    targets: tuple[Target, ...] = Field(min_length=1)
    channels: tuple[ChannelStep, ...] = Field(min_length=1)
    ack_timeout: DurationS
    next: str | None = None
    # Page this tier only when the alert matches (e.g. {is_live: true}); otherwise the chain moves on.
    when: Match | None = None
    # Conditions on the case: page this tier only once a task is done (`if_done: locate`, e.g. a liaison
    # who can only act with an address), or only while it is not (`unless_done: identify`). A tier whose
    # condition fails is skipped and the chain moves on at once. ("An accept present" needs no
    # condition: the paging chain stops at the first accept.)
    if_done: str | None = None
    unless_done: str | None = None

    @model_validator(mode="after")
    def _channels_fit(self) -> Tier:
        if self.ack_timeout <= 0:
            raise ValueError("ack_timeout must be more than 0s")
        for channel in self.channels:
            if channel.after >= self.ack_timeout:
                raise ValueError(f"channel {channel.channel} starts at or after the ack_timeout")
        return self


class Exhausted(_Strict):
    """When every pass is spent: page every on-call person of these roles and tell the manager."""

    page_all: tuple[Role, ...] = Field(min_length=1)
    notify: tuple[Role, ...] = ("manager",)
    channels: tuple[Channel, ...] = ("sms", "voice")
    every: DurationS = 600.0

    @model_validator(mode="after")
    def _positive(self) -> Exhausted:
        if self.every <= 0:
            raise ValueError("every must be more than 0s")
        return self


class Paging(_Strict):
    tiers: tuple[Tier, ...] = Field(min_length=1)
    repeat: int = Field(0, ge=0, le=10, description="extra passes over the whole chain")
    exhausted: Exhausted

    @model_validator(mode="after")
    def _references(self) -> Paging:
        ids = [t.id for t in self.tiers]
        for index, tier in enumerate(self.tiers):
            if ids.index(tier.id) != index:
                raise ValueError(f"tier id {tier.id!r} is used twice")
            if tier.next is not None and tier.next not in ids:
                raise ValueError(f"tier {tier.id!r}: next names unknown tier {tier.next!r}")
            if tier.next is not None and ids.index(tier.next) <= index:
                raise ValueError(f"tier {tier.id!r}: next must point to a later tier (use repeat to loop)")
        unreachable = set(ids) - set(chain_ids(self.tiers))
        if unreachable:
            raise ValueError(f"tiers never reached: {', '.join(sorted(unreachable))}")
        return self


class Task(_Strict):
    """An investigation task due `due` after receipt; when overdue, `overdue_notify` is told by SMS, and
    called too with `overdue_page` (`holder`: whoever accepted the case; or on-call people of a role)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str = Field(min_length=1, max_length=200)
    due: DurationS
    role: Role = "investigator"
    overdue_notify: tuple[Reacting, ...] = ("holder", "team_lead")
    overdue_page: bool = False  # also call them (a voice notice), not only text them
    # A condition on the case: the task is not needed once that other task is done
    # (e.g. the emergency disclosure request, once the person is located).
    unless_done: str | None = None


class Reescalation(_Strict):
    """An accepted case with no activity (task, note, outcome) for `quiet_for` nudges `nudge[0]`, then
    after as long again `nudge[1]`, and so on, repeating the last one until there is activity."""

    quiet_for: DurationS = 900.0
    nudge: tuple[Reacting, ...] = ("holder", "team_lead")

    @model_validator(mode="after")
    def _sane(self) -> Reescalation:
        if self.quiet_for <= 0:
            raise ValueError("quiet_for must be more than 0s")
        if not self.nudge:
            raise ValueError("nudge needs at least one target")
        return self


class Reaction(_Strict):
    """What an alert update does: `repage` fires an open case's next step at once; `notify` sends an SMS
    notice to the person holding the case (`holder`) and/or the on-call people of roles."""

    repage: bool = False
    notify: tuple[Reacting, ...] = ()


class Reactions(_Strict):
    """Reactions to `update` and `retract` alerts. A retract never stops paging by itself."""

    went_live: Reaction = Reaction(repage=True, notify=("holder",))
    new_location: Reaction = Reaction(notify=("holder",))
    retract: Reaction = Reaction(notify=("holder", "team_lead"))


class Playbook(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    _doc: YamlDoc | None = PrivateAttr(default=None)
    description: str = ""
    default: bool = False
    match: Match = Match()
    paging: Paging
    tasks: tuple[Task, ...] = ()
    reactions: Reactions = Reactions()
    reescalate: Reescalation = Reescalation()

    @model_validator(mode="after")
    def _unique_tasks(self) -> Playbook:
        ids = [t.id for t in self.tasks]
        for index, task_id in enumerate(ids):
            if ids.index(task_id) != index:
                raise ValueError(f"task id {task_id!r} is used twice")
        return self

    def dangling(self) -> list[str]:
        """Conditions naming a task this playbook does not have, as 'file:line: field: message'."""
        ids = [t.id for t in self.tasks]
        problems = []
        for index, task in enumerate(self.tasks):
            if task.unless_done is not None and (task.unless_done not in ids or task.unless_done == task.id):
                problems.append(
                    f"{self.where('tasks', index, 'unless_done')}: task {task.id!r}: unless_done names no"
                    f" other task ({task.unless_done!r})"
                )
        for index, tier in enumerate(self.paging.tiers):
            for key, named in (("if_done", tier.if_done), ("unless_done", tier.unless_done)):
                if named is not None and named not in ids:
                    problems.append(
                        f"{self.where('paging', 'tiers', index, key)}: tier {tier.id!r}: {key} names no task"
                        f" of this playbook ({named!r})"
                    )
        return problems

    def where(self, *loc: str | int) -> str:
        """'file:line: field' for an error about this playbook (loaded from a file)."""
        if self._doc is None:
            return f"playbook {self.name}: {field_path(loc)}"
        return f"{self._doc.filename}:{self._doc.line_of(loc)}: {field_path(loc)}"


def chain_ids(tiers: tuple[Tier, ...]) -> list[str]:
    """Tier ids in the order one pass walks them (each tier goes to `next`, else the following one)."""
    order, index = [], 0
    by_id = {t.id: i for i, t in enumerate(tiers)}
    while index < len(tiers):
        tier = tiers[index]
        order.append(tier.id)
        index = by_id[tier.next] if tier.next is not None else index + 1
    return order


def load_playbooks(directory: Path) -> list[Playbook]:
    """Every *.yaml in the folder, validated; exactly one must be the default."""
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    if not files:
        raise ConfigError([f"{directory}: no playbook (*.yaml) found"])
    playbooks: list[Playbook] = []
    problems: list[str] = []
    origin: dict[str, str] = {}
    for path in files:
        try:
            doc = load_yaml(path)
            playbook = validate_doc(doc, Playbook)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        playbook._doc = doc
        problems.extend(playbook.dangling())
        if playbook.name in origin:
            problems.append(f"{path}:1: name: {playbook.name!r} is also the name in {origin[playbook.name]}")
        origin[playbook.name] = str(path)
        playbooks.append(playbook)
    defaults = [p.name for p in playbooks if p.default]
    if not problems and len(defaults) != 1:
        problems.append(f"{directory}: exactly one playbook must say 'default: true' (found {len(defaults)})")
    if problems:
        raise ConfigError(problems)
    return playbooks
