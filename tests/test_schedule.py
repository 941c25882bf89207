"""Who is on call: table-driven tests of the pure resolution (rotations across both daylight-saving
changes of two time zones, overrides starting and ending mid-shift, layers, follow-the-sun, region
fallback, language preference, an empty region)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from responder.oncall.roster import Roster
from responder.oncall.schedule import Override, Schedule, resolve, spans
from responder.settings import ConfigFile, IntegrationConfig, PersonConfig
from responder.yamlfile import parse_yaml, validate_doc

LANGUAGES = {"ana": ("fr",), "bruno": ("fr", "en"), "lee": ("en",), "sam": ("en",), "dev": ("hi", "en")}
PEOPLE = {
    pid: PersonConfig(
        id=pid,
        name=pid.title(),
        phone=f"+336399800{n:02d}",
        languages=LANGUAGES[pid],
        roles=("negotiator",),
        active=pid != "dev",  # dev is inactive: a turn of theirs is a gap
    )
    for n, pid in enumerate(LANGUAGES)
}


def schedule(text: str) -> Schedule:
    return validate_doc(parse_yaml(text, "test.yaml"), Schedule)


PARIS_WEEKLY = schedule(
    """
id: paris
role: negotiator
regions: [FR-75]
time_zone: Europe/Paris
layers:
  - {name: primary, people: [ana, bruno], rotation: weekly, handoff: "09:00", start: 2026-03-02}
  - {name: backup, people: [lee]}
overrides:
  - {person: sam, start: "2026-03-25T20:00:00+01:00", end: "2026-03-26T02:00:00+01:00"}
  - {person: lee, replaces: ana, start: "2026-03-18T12:00:00+01:00", end: "2026-03-18T13:00:00+01:00"}
  - {layer: backup, person: sam, start: "2026-03-24T00:00:00+01:00", end: "2026-03-24T12:00:00+01:00"}
"""
)
NEW_YORK_DAILY = schedule(
    """
id: new-york-daily
role: negotiator
regions: [US-NY]
time_zone: America/New_York
layers:
  - {people: [sam, lee, bruno], rotation: daily, handoff: "02:30", start: 2026-03-01}
"""
)
NEW_YORK_WEEKLY = schedule(
    """
id: new-york-weekly
role: negotiator
regions: [US-NJ]
time_zone: America/New_York
layers:
  - {people: [sam, lee], rotation: weekly, handoff: "01:30", start: 2026-10-04}
"""
)
FOLLOW_THE_SUN = schedule(
    """
id: sun
role: negotiator
regions: [GB]
time_zone: Europe/London
layers:
  - {name: primary, people: [bruno], hours: "08:00-20:00"}
  - {name: primary, people: [lee], hours: "20:00-08:00", days: [mon, tue, wed, thu, fri]}
  - {name: backup, people: [sam]}
"""
)
WITH_INACTIVE = schedule(
    """
id: up
role: negotiator
regions: [IN-UP]
time_zone: Asia/Kolkata
layers:
  - {people: [dev, lee], rotation: 12h, handoff: "08:00", start: 2026-03-01}
"""
)
FRANCE = schedule(
    """
id: france
role: negotiator
regions: [FR]
time_zone: Europe/Paris
prefer_language: true
layers:
  - {name: primary, people: [ana]}
  - {name: backup, people: [bruno]}
"""
)
DEFAULT = schedule(
    """
id: default
role: negotiator
regions: ["*"]
layers:
  - {people: [lee]}
"""
)
ALL = [PARIS_WEEKLY, NEW_YORK_DAILY, NEW_YORK_WEEKLY, FOLLOW_THE_SUN, WITH_INACTIVE, FRANCE, DEFAULT]


def who(region: str, at: str, language: str | None = None, schedules: list[Schedule] = ALL) -> list[str]:
    found = resolve(schedules, PEOPLE, "negotiator", region, datetime.fromisoformat(at), language)
    return [f"{o.layer}:{o.person}" for o in found]


CASES = [
    # Paris, weekly at Monday 09:00 local: Mar 2 ana, Mar 9 bruno, Mar 16 ana, Mar 23 bruno, ...
    ("weekly hand-off in winter (CET)", "FR-75", "2026-03-23T07:59:59Z", ["primary:ana", "backup:lee"]),
    ("... at 09:00 CET = 08:00Z", "FR-75", "2026-03-23T08:00:00Z", ["primary:bruno", "backup:lee"]),
    (
        "spring forward (Mar 29): 09:00 CEST is 07:00Z",
        "FR-75",
        "2026-03-30T06:59:59Z",
        ["primary:bruno", "backup:lee"],
    ),
    ("... not an hour later", "FR-75", "2026-03-30T07:00:00Z", ["primary:ana", "backup:lee"]),
    (
        "fall back (Oct 25): 09:00 CET is 08:00Z again",
        "FR-75",
        "2026-10-26T07:59:59Z",
        ["primary:bruno", "backup:lee"],
    ),
    ("... turn 34 is ana's", "FR-75", "2026-10-26T08:00:00Z", ["primary:ana", "backup:lee"]),
    # Overrides
    ("override starts mid-shift", "FR-75", "2026-03-25T18:59:59Z", ["primary:bruno", "backup:lee"]),
    ("... sam from 20:00 local", "FR-75", "2026-03-25T19:00:00Z", ["primary:sam", "backup:lee"]),
    ("... across midnight", "FR-75", "2026-03-26T00:59:59Z", ["primary:sam", "backup:lee"]),
    ("... ends mid-shift", "FR-75", "2026-03-26T01:00:00Z", ["primary:bruno", "backup:lee"]),
    ("override of one person only, while they are on", "FR-75", "2026-03-18T11:30:00Z", ["primary:lee"]),
    ("override in the backup layer", "FR-75", "2026-03-24T10:00:00Z", ["primary:bruno", "backup:sam"]),
    # New York, daily at 02:30: 02:30 does not exist on Mar 8, the hand-off happens at the jump
    ("daily, the day before spring forward", "US-NY", "2026-03-07T07:30:00Z", ["primary:sam"]),
    ("spring forward: still sam at 01:59 EST", "US-NY", "2026-03-08T06:59:59Z", ["primary:sam"]),
    ("... lee from the jump (03:00 EDT)", "US-NY", "2026-03-08T07:00:00Z", ["primary:lee"]),
    ("... next day at 02:30 EDT", "US-NY", "2026-03-09T06:30:00Z", ["primary:bruno"]),
    ("fall back (Nov 1): turn 244 until 02:30 EST", "US-NY", "2026-11-01T07:29:59Z", ["primary:lee"]),
    ("... turn 245 from 02:30 EST", "US-NY", "2026-11-01T07:30:00Z", ["primary:bruno"]),
    # New Jersey, weekly at Sunday 01:30, which happens twice on Nov 1
    ("weekly at 01:30, before", "US-NJ", "2026-11-01T05:29:59Z", ["primary:lee"]),
    ("... first 01:30 (EDT) hands off", "US-NJ", "2026-11-01T05:30:00Z", ["primary:sam"]),
    ("... the repeated 01:15 (EST) does not hand back", "US-NJ", "2026-11-01T06:15:00Z", ["primary:sam"]),
    ("... nor the second 01:30", "US-NJ", "2026-11-01T06:45:00Z", ["primary:sam"]),
    # Follow-the-sun: days by bruno, weeknights by lee; backup sam throughout
    ("day hours", "GB", "2026-06-10T11:00:00Z", ["primary:bruno", "backup:sam"]),
    ("weeknight", "GB", "2026-06-10T21:00:00Z", ["primary:lee", "backup:sam"]),
    (
        "weeknight after midnight counts as the evening's day",
        "GB",
        "2026-06-13T02:00:00Z",
        ["primary:lee", "backup:sam"],
    ),
    ("Saturday night: no primary, backup only", "GB", "2026-06-13T21:00:00Z", ["backup:sam"]),
    ("20:00 BST is 19:00Z", "GB", "2026-06-10T18:59:59Z", ["primary:bruno", "backup:sam"]),
    # 12-hour rotation with an inactive person: their turn falls back up the region chain
    ("12h, lee's turn", "IN-UP", "2026-03-01T15:00:00Z", ["primary:lee"]),
    ("12h, inactive dev's turn: IN → * (lee)", "IN-UP", "2026-03-01T03:00:00Z", ["primary:lee"]),
    # Region fallback
    ("FR-13 has no schedule: FR", "FR-13", "2026-03-23T12:00:00Z", ["primary:ana", "backup:bruno"]),
    ("BR-SP: the programme default", "BR-SP", "2026-03-23T12:00:00Z", ["primary:lee"]),
    ("no region: the programme default", "", "2026-03-23T12:00:00Z", ["primary:lee"]),
]


@pytest.mark.parametrize(("label", "region", "at", "expected"), CASES, ids=[c[0] for c in CASES])
def test_who_is_on_call(label: str, region: str, at: str, expected: list[str]) -> None:
    assert who(region, at) == expected


def test_an_empty_region_with_no_default_has_nobody() -> None:
    assert who("BR-SP", "2026-03-23T12:00:00Z", schedules=[PARIS_WEEKLY, FRANCE]) == []


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", ["primary:bruno", "backup:ana"]),
        ("fr", ["primary:ana", "backup:bruno"]),
        (None, ["primary:ana", "backup:bruno"]),
    ],
)
def test_a_language_match_takes_the_primary_slot_where_the_schedule_allows(
    language: str | None, expected: list[str]
) -> None:
    assert who("FR", "2026-03-23T12:00:00Z", language) == expected
    # Paris does not say prefer_language: the rotation decides alone.
    assert who("FR-75", "2026-03-23T12:00:00Z", language) == ["primary:bruno", "backup:lee"]


def test_spans_follow_the_hand_offs_in_utc() -> None:
    found = spans(
        NEW_YORK_WEEKLY,
        datetime.fromisoformat("2026-10-26T00:00:00Z"),
        datetime.fromisoformat("2026-11-15T00:00:00Z"),
        PEOPLE,
    )
    assert [(s.person, s.start.isoformat(), s.end.isoformat()) for s in found] == [
        ("lee", "2026-10-26T00:00:00+00:00", "2026-11-01T05:30:00+00:00"),  # to 01:30 EDT
        ("sam", "2026-11-01T05:30:00+00:00", "2026-11-08T06:30:00+00:00"),  # 01:30 EST
        ("lee", "2026-11-08T06:30:00+00:00", "2026-11-15T00:00:00+00:00"),
    ]


def roster_of(schedules: list[Schedule]) -> Roster:
    config = ConfigFile(
        integrations=(IntegrationConfig(name="test", secret_env="RESPONDER_SECRET_TEST"),),
        people=tuple(PEOPLE.values()),
    )
    return Roster(config, schedules)


def test_the_roster_keeps_an_answer_only_while_no_schedule_changes_hands() -> None:
    """Every alert asks the roster; it works each answer out once per stretch with no hand-off. Asked
    around every moment of the table above (hand-offs, both daylight-saving jumps, overrides starting
    and ending), a second at a time across each edge and in a shuffled order besides, it answers as
    the schedules do."""
    roster = roster_of(ALL)
    moments: list[datetime] = []
    for _, _, stamp, _ in CASES:
        edge = datetime.fromisoformat(stamp)
        moments += [edge + timedelta(seconds=s) for s in range(-3, 4)]
        moments += [edge + timedelta(minutes=m) for m in range(-150, 151, 13)]
    regions = sorted({c[1] for c in CASES})
    asked = [(m, r, lang) for m in sorted(moments) for r in regions for lang in (None, "en")]
    shuffled = asked[:]
    random.Random(13).shuffle(shuffled)
    for moment, region, language in asked + shuffled:
        expected = resolve(ALL, PEOPLE, "negotiator", region, moment, language)
        assert roster.who("negotiator", region, moment, language) == expected, (moment, region, language)


def test_an_override_made_through_the_api_is_answered_at_once() -> None:
    roster = roster_of(ALL)
    at = datetime.fromisoformat("2026-06-10T11:00:00Z")
    assert [o.person for o in roster.who("negotiator", "GB", at)] == ["bruno", "sam"]
    roster.set_overrides({"sun": [Override(person="ana", start=at, end=at + timedelta(hours=1))]})
    assert [o.person for o in roster.who("negotiator", "GB", at)] == ["ana", "sam"]
    roster.set_overrides({})
    assert [o.person for o in roster.who("negotiator", "GB", at)] == ["bruno", "sam"]


def test_a_local_time_in_the_repeated_hour_is_answered_for_its_own_instant() -> None:
    """New York's clocks go back at 02:00 EDT on 2026-11-01: 01:15 the second time (fold=1, 06:15Z)
    is an hour after the first. An override from 05:45Z covers it; asked first at 00:30 (no change
    within the hour after it), the roster must not take the second 01:15 for a time in that hour."""
    new_york = ZoneInfo("America/New_York")
    only = schedule(
        """
id: only
role: negotiator
regions: ["*"]
layers:
  - {people: [lee]}
overrides:
  - {person: sam, start: "2026-11-01T05:45:00Z", end: "2026-11-01T08:00:00Z"}
"""
    )
    roster = roster_of([only])
    first = datetime(2026, 11, 1, 0, 30, tzinfo=new_york)
    covered = datetime(2026, 11, 1, 1, 15, fold=1, tzinfo=new_york)
    assert [o.person for o in roster.who("negotiator", "US-NY", first)] == ["lee"]
    assert [o.person for o in roster.who("negotiator", "US-NY", covered)] == ["sam"]
