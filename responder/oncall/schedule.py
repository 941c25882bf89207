"""Schedules: who is on call for a role in a region at a time (PRODUCT.md §2; issue 4).

A schedule covers one role in one or more regions, in its own time zone. It has layers (primary,
backup, ...); each layer rotates through its people, handing off at a local time, so a weekly hand-off
at 09:00 stays at 09:00 across daylight-saving changes. A layer may cover only some hours or days
(follow-the-sun: two `primary` layers with complementary hours). Overrides put one person in a layer
for a window. Everything here is pure: times in, people out.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from responder.domain import Role
from responder.durations import parse_duration_s
from responder.settings import DEFAULT_REGION, PersonConfig, check_regions, check_time_zone

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROTATIONS = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_ID = r"^[a-z0-9][a-z0-9_.-]*$"


def region_chain(region: str | None) -> list[str]:
    """Where to look, most local first: FR-75 → FR → * (the programme default)."""
    if not region or region == DEFAULT_REGION:
        return [DEFAULT_REGION]
    chain = [region]
    if "-" in region:
        chain.append(region.split("-", 1)[0])
    chain.append(DEFAULT_REGION)
    return chain


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Layer(_Strict):
    """One layer of a schedule: its people take turns, `rotation` long each, handing off at `handoff`."""

    name: str = Field("primary", pattern=_ID)
    people: tuple[str, ...] = Field(min_length=1)
    rotation: str = "weekly"  # hourly, daily, weekly, or a duration such as 12h or 3d
    handoff: time = time(9, 0)  # local time of the hand-off, in the schedule's time zone
    start: date | None = None  # the first turn (people[0]) starts on this date at `handoff`
    hours: str | None = None  # "08:00-20:00" (or "20:00-08:00", across midnight): covered hours only
    days: tuple[Weekday, ...] | None = None  # covered days (a window across midnight counts by its start)

    @field_validator("rotation")
    @classmethod
    def _rotation(cls, value: str) -> str:
        if value not in ROTATIONS:
            try:
                seconds = parse_duration_s(value)
            except ValueError as exc:
                raise ValueError("give hourly, daily, weekly or a duration such as 12h or 3d") from exc
            if seconds < 60:
                raise ValueError("a turn lasts at least 1m")
        return value

    @field_validator("handoff", mode="before")
    @classmethod
    def _sexagesimal(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted 21:00 as the base-60 number 1260: read it back as 21:00.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            return time(value // 60, value % 60)
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            if not _HOURS.match(value):
                raise ValueError("write local hours as HH:MM-HH:MM, e.g. 08:00-20:00")
            if value[:5] == value[6:] or (value[6:] == "24:00" and value[:5] == "00:00"):
                raise ValueError("an empty or whole-day window: leave hours out to cover the whole day")
        return value

    @model_validator(mode="after")
    def _anchor(self) -> Layer:
        if len(self.people) > 1 and self.start is None:
            raise ValueError("start: give the date of the first hand-off when the layer rotates")
        return self

    @property
    def length(self) -> timedelta:
        return ROTATIONS.get(self.rotation) or timedelta(seconds=parse_duration_s(self.rotation))

    @property
    def anchor(self) -> datetime:
        """The first hand-off, as a naive local time."""
        return datetime.combine(self.start or date(2000, 1, 3), self.handoff)

    def window(self) -> tuple[time, time] | None:
        if self.hours is None:
            return None
        start = time(int(self.hours[0:2]), int(self.hours[3:5]))
        end = time(0, 0) if self.hours[6:] == "24:00" else time(int(self.hours[6:8]), int(self.hours[9:11]))
        return start, end

    def covers(self, local: datetime) -> bool:
        """Whether the layer covers this naive local time (its hours and days)."""
        window, day = self.window(), local.date()
        if window is not None:
            start, end = window
            clock = local.time()
            if start < end or end == time(0, 0):
                if clock < start or (end != time(0, 0) and clock >= end):
                    return False
            elif clock < end:
                day -= timedelta(days=1)  # the window started the evening before
            elif clock < start:
                return False
        return self.days is None or WEEKDAYS[day.weekday()] in self.days

    def turn_start(self, turn: int, zone: ZoneInfo) -> datetime:
        """When turn number `turn` (0: people[0] from `start`) begins, in UTC."""
        return to_utc(self.anchor + turn * self.length, zone)

    def turn_at(self, at: datetime, zone: ZoneInfo) -> int:
        """The number of the turn running at `at`: the last hand-off at or before it.

        Counted on real hand-off instants, so the hour repeated when clocks go back cannot hand the
        layer back to the previous person.
        """
        turn = (_local(at, zone) - self.anchor) // self.length
        while self.turn_start(turn + 1, zone) <= at:
            turn += 1
        while self.turn_start(turn, zone) > at:
            turn -= 1
        return turn

    def person_at(self, at: datetime, zone: ZoneInfo) -> str | None:
        """Whose turn it is at `at`, or None outside the layer's hours and days."""
        if not self.covers(_local(at, zone)):
            return None
        if len(self.people) == 1:
            return self.people[0]
        return self.people[self.turn_at(at, zone) % len(self.people)]


def to_utc(naive: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at which the zone's wall clock reads `naive` or later.

    A time repeated when clocks go back is its first occurrence; a time skipped when they go forward
    is the moment of the jump (a 02:30 hand-off on that night happens at 03:00).
    """
    found = []
    for fold in (0, 1):
        candidate = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if _local(candidate, zone) == naive:
            found.append(candidate)
    if found:
        return min(found)
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)  # reads before `naive`
    high = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)  # reads after it
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if _local(middle, zone) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


class Override(_Strict):
    """`person` takes layer `layer` for [start, end), replacing whoever (or only `replaces`) is on it."""

    id: str | None = None  # set for overrides made through the API (stored in the database)
    layer: str = Field("primary", pattern=_ID)
    person: str = Field(pattern=_ID)
    replaces: str | None = None
    start: AwareDatetime
    end: AwareDatetime
    reason: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def holds(self, at: datetime) -> bool:
        return self.start <= at < self.end


class Schedule(_Strict):
    """Who answers for `role` in `regions`: layers in order (primary first), with overrides."""

    id: str = Field(pattern=_ID)
    _source: str = PrivateAttr(default="")
    title: str = ""
    role: Role
    regions: tuple[str, ...] = Field(min_length=1)
    time_zone: str = "UTC"
    prefer_language: bool = False  # a layer's person who speaks the alert's language is paged first
    handoff_sms: bool = False  # text the incoming person when their turn starts
    layers: tuple[Layer, ...] = Field(min_length=1)
    overrides: tuple[Override, ...] = ()

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_regions(value)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_time_zone(value)

    @model_validator(mode="after")
    def _override_layers(self) -> Schedule:
        names = {layer.name for layer in self.layers}
        for override in self.overrides:
            if override.layer not in names:
                raise ValueError(f"override for layer {override.layer!r}: the schedule has no such layer")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def layer_names(self) -> list[str]:
        return list(dict.fromkeys(layer.name for layer in self.layers))

    def with_overrides(self, extra: Iterable[Override]) -> Schedule:
        merged = self.model_copy(update={"overrides": self.overrides + tuple(extra)})
        merged._source = self._source
        return merged


@dataclass(frozen=True)
class OnCall:
    """One answer: who, in which layer slot, from which schedule and region."""

    person: str
    layer: str
    schedule: str
    region: str
    override: bool = False


def _local(at: datetime, zone: ZoneInfo) -> datetime:
    return at.astimezone(zone).replace(tzinfo=None)


def layer_person(
    schedule: Schedule, name: str, at: datetime, people: Mapping[str, PersonConfig]
) -> tuple[str, bool] | None:
    """Who holds layer `name` of the schedule at `at` (and whether by override); None if nobody."""
    scheduled: str | None = None
    for layer in schedule.layers:
        if layer.name == name:
            candidate = layer.person_at(at, schedule.zone)
            if candidate is not None and _active(candidate, people):
                scheduled = candidate
                break
    for override in reversed(schedule.overrides):  # the latest override wins
        if (
            override.layer == name
            and override.holds(at)
            and _active(override.person, people)
            and override.replaces in (None, scheduled)
        ):
            return override.person, True
    return (scheduled, False) if scheduled is not None else None


def _active(person_id: str, people: Mapping[str, PersonConfig]) -> bool:
    person = people.get(person_id)
    return person is not None and person.active


def resolve_here(
    schedules: Sequence[Schedule], region: str, at: datetime, people: Mapping[str, PersonConfig]
) -> list[OnCall]:
    """The people on call in these schedules (all for one role and region), layer by layer."""
    names: list[str] = []
    for schedule in schedules:
        names += [n for n in schedule.layer_names() if n not in names]
    found: list[OnCall] = []
    for name in names:
        for schedule in schedules:
            holder = layer_person(schedule, name, at, people)
            if holder is not None:
                if all(f.person != holder[0] for f in found):
                    found.append(OnCall(holder[0], name, schedule.id, region, holder[1]))
                break
    return found


def resolve(
    schedules: Sequence[Schedule],
    people: Mapping[str, PersonConfig],
    role: str,
    region: str | None,
    at: datetime,
    language: str | None = None,
) -> list[OnCall]:
    """Who, in order, for `role` in `region` at `at`: the nearest region with anyone on call wins.

    With `language`, a schedule that says `prefer_language` puts the people who speak it first; they
    take the earlier layer slots (the primary slot goes to a speaker if any layer has one).
    """
    for candidate in region_chain(region):
        here = [s for s in schedules if s.role == role and candidate in s.regions]
        found = resolve_here(here, candidate, at, people)
        if found:
            if language and any(s.prefer_language for s in here):
                found = _prefer(found, language, people)
            return found
    return []


def _prefer(found: list[OnCall], language: str, people: Mapping[str, PersonConfig]) -> list[OnCall]:
    speaks = [f for f in found if language in people[f.person].languages]
    ordered = speaks + [f for f in found if f not in speaks]
    return [replace(who, layer=slot.layer) for who, slot in zip(ordered, found, strict=True)]


def change_times(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every moment in (start, end) at which the schedule's answer may change, in UTC.

    Hand-offs, the edges of covered hours, overrides, and daylight-saving transitions (a naive local
    time that jumps can cross a hand-off without passing through it).
    """
    zone, found = schedule.zone, set()
    first, last = _local(start, zone) - timedelta(days=2), _local(end, zone) + timedelta(days=2)
    for layer in schedule.layers:
        if len(layer.people) > 1:
            turn = layer.turn_at(start, zone)
            moment = layer.turn_start(turn, zone)
            while moment < end:
                found.add(moment)
                turn += 1
                moment = layer.turn_start(turn, zone)
        window = layer.window()
        if window is not None or layer.days is not None:
            day = first.date()
            while day <= last.date():
                for edge in [time(0, 0)] if window is None else [window[0], window[1]]:
                    naive = datetime.combine(day, edge)
                    # The wall clock may read an edge twice (clocks going back): both instants count.
                    found.update(naive.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
                    found.add(to_utc(naive, zone))
                day += timedelta(days=1)
    for override in schedule.overrides:
        found.update({override.start.astimezone(UTC), override.end.astimezone(UTC)})
    found.update(_transitions(zone, start, end))
    return sorted(t for t in found if start < t < end)


def _transitions(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Instants where the zone's UTC offset changes, to the second."""
    found = []
    moment = start.astimezone(UTC)
    while moment < end:
        step = min(moment + timedelta(hours=1), end.astimezone(UTC))
        if moment.astimezone(zone).utcoffset() != step.astimezone(zone).utcoffset():
            low, high = moment, step
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high.replace(microsecond=0))
        moment = step
    return found


@dataclass(frozen=True)
class Span:
    """A stretch of time during which one person holds one layer of one schedule."""

    schedule: str
    layer: str
    person: str
    start: datetime
    end: datetime
    override: bool = False


def spans(
    schedule: Schedule, start: datetime, end: datetime, people: Mapping[str, PersonConfig]
) -> list[Span]:
    """The schedule's turns between start and end, layer by layer, cut at `start` and `end`."""
    cuts = [start, *change_times(schedule, start, end), end]
    result: list[Span] = []
    open_spans: dict[str, Span] = {}
    for left, right in itertools.pairwise(cuts):
        for name in schedule.layer_names():
            holder = layer_person(schedule, name, left, people)
            current = open_spans.get(name)
            if current is not None and holder is not None and (current.person, current.override) == holder:
                open_spans[name] = replace(current, end=right)
                continue
            if current is not None:
                result.append(current)
                del open_spans[name]
            if holder is not None:
                open_spans[name] = Span(schedule.id, name, holder[0], left, right, holder[1])
    result += open_spans.values()
    return sorted(result, key=lambda s: (s.start, schedule.layer_names().index(s.layer)))


@dataclass(frozen=True)
class Gap:
    role: str
    region: str
    start: datetime
    end: datetime
    fallback: tuple[OnCall, ...]  # who is paged instead (up the region chain), maybe nobody


def gaps(
    schedules: Sequence[Schedule],
    people: Mapping[str, PersonConfig],
    start: datetime,
    end: datetime,
    pairs: Iterable[tuple[str, str]],
) -> list[Gap]:
    """Stretches where a role in a region has nobody on call in its own schedules."""
    found: list[Gap] = []
    for role, region in pairs:
        here = [s for s in schedules if s.role == role and region in s.regions]
        cuts = {start, end}
        for schedule in here:
            cuts.update(change_times(schedule, start, end))
        ordered = sorted(cuts)
        for left, right in itertools.pairwise(ordered):
            if resolve_here(here, region, left, people):
                continue
            parent = _parent(region)
            fallback = tuple(resolve(schedules, people, role, parent, left)) if parent else ()
            last = found[-1] if found else None
            if last is not None and (last.role, last.region, last.end, last.fallback) == (
                role,
                region,
                left,
                fallback,
            ):
                found[-1] = replace(last, end=right)
                continue
            found.append(Gap(role, region, left, right, fallback))
    return found


def _parent(region: str) -> str | None:
    chain = region_chain(region)
    return chain[1] if len(chain) > 1 else None


def hours_of(gap: Gap) -> list[datetime]:
    """The whole UTC hours a gap touches (the hours `oncall gaps` lists)."""
    hour = gap.start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    found = []
    while hour < gap.end:
        found.append(hour)
        hour += timedelta(hours=1)
    return found
