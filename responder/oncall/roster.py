"""The roster: people and schedules, answering who is on call for a role in a region at a time.

Schedules come from config/schedules/ (reloaded when the files change) plus overrides made through the
API (kept in the database and copied here); `responder.oncall.schedule` does the answering.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from responder.oncall.schedule import (
    OnCall,
    Override,
    Schedule,
    change_times,
    layer_person,
    region_chain,
    resolve,
)
from responder.settings import ConfigFile, PersonConfig

__all__ = ["Roster", "region_chain"]

# Answers of `who` are kept until the next moment any schedule's answer may change (a hand-off, the
# edge of covered hours, an override, a daylight-saving jump), looked for this far ahead at most.
STEADY_HORIZON = timedelta(hours=1)


class Roster:
    """People and schedules, indexed for quick answers; schedules and overrides can be swapped live."""

    def __init__(self, config: ConfigFile, schedules: Sequence[Schedule] = ()) -> None:
        self.people = {p.id: p for p in config.people}
        self._by_phone = {n: p for p in config.people for n in p.numbers}
        self.default_team = tuple(config.default_team)
        self.configured: list[Schedule] = list(schedules)
        self._extra: dict[str, list[Override]] = {}
        self.schedules: list[Schedule] = list(schedules)
        self.blocked: dict[str, frozenset[str]] = {}  # contact flags: channels (or "all") not to use
        # Every schedule's answer holds over [start, end): the answers of `who` found in it.
        self._steady: tuple[datetime, datetime] | None = None
        self._answers: dict[tuple[str, str | None, str | None], list[OnCall]] = {}

    def person(self, person_id: str) -> PersonConfig | None:
        return self.people.get(person_id)

    def by_phone(self, phone: str) -> PersonConfig | None:
        return self._by_phone.get(phone)

    def schedule(self, schedule_id: str) -> Schedule | None:
        return next((s for s in self.schedules if s.id == schedule_id), None)

    def replace_schedules(self, schedules: Sequence[Schedule]) -> None:
        """New schedules from the files (a reload); API overrides stay."""
        self.configured = list(schedules)
        self._merge()

    def set_overrides(self, overrides: Mapping[str, Iterable[Override]]) -> None:
        """The overrides made through the API, per schedule id."""
        self._extra = {k: list(v) for k, v in overrides.items()}
        self._merge()

    def _merge(self) -> None:
        self.schedules = [s.with_overrides(self._extra.get(s.id, ())) for s in self.configured]
        self._steady, self._answers = None, {}

    def who(self, role: str, region: str | None, at: datetime, language: str | None = None) -> list[OnCall]:
        """Who, in order, for the role in the region at that time (nearest staffed region). Every
        alert asks this; the answer is worked out once per stretch of time in which no schedule
        changes hands."""
        at = at.astimezone(UTC)  # the window is compared in UTC: a local time's fold would be ignored
        if self._steady is None or not self._steady[0] <= at < self._steady[1]:
            end = at + STEADY_HORIZON
            changes = [t for s in self.schedules for t in change_times(s, at, end)[:1]]
            self._steady, self._answers = (at, min(changes, default=end)), {}
        key = (role, region, language)
        found = self._answers.get(key)
        if found is None:
            found = self._answers[key] = resolve(self.schedules, self.people, role, region, at, language)
        return list(found)

    def on_call(
        self, role: str, region: str | None, layer: str, at: datetime, language: str | None = None
    ) -> list[PersonConfig]:
        """The person holding that layer slot, nearest staffed region; empty when nobody does."""
        return [self.people[o.person] for o in self.who(role, region, at, language) if o.layer == layer]

    def everyone_on_call(
        self, role: str, region: str | None, at: datetime, language: str | None = None
    ) -> list[PersonConfig]:
        """Every layer's on-call person for the role (all-hands), nearest staffed region."""
        return [self.people[o.person] for o in self.who(role, region, at, language)]

    def in_schedule(self, schedule_id: str, layer: str, at: datetime) -> list[PersonConfig]:
        """Whoever holds that layer of that schedule now (an empty list when nobody does)."""
        schedule = self.schedule(schedule_id)
        holder = layer_person(schedule, layer, at, self.people) if schedule is not None else None
        return [self.people[holder[0]]] if holder is not None else []

    def set_flags(self, blocked: Mapping[str, frozenset[str]]) -> None:
        self.blocked = dict(blocked)

    def usable_channels(self, person: PersonConfig) -> tuple[str, ...]:
        """The person's channels in their order of preference, less those flagged as dead."""
        blocked = self.blocked.get(person.id, frozenset())
        if "all" in blocked:
            return ()
        return tuple(c for c in person.channels if c not in blocked)

    def channel_for(self, person: PersonConfig, channel: str) -> str | None:
        """The step's channel if the person can take it, else their first usable one (None: none)."""
        usable = self.usable_channels(person)
        return channel if channel in usable else (usable[0] if usable else None)

    def fallback_team(self) -> list[PersonConfig]:
        """The programme's default team (active people), paged when a tier finds nobody on call."""
        return [self.people[p] for p in self.default_team if p in self.people and self.people[p].active]
