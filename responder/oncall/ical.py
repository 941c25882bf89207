"""iCalendar feeds of on-call turns, per schedule and per person, behind a secret URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime

from icalendar import Calendar, Event

from responder.oncall.schedule import Schedule, Span, spans
from responder.settings import PersonConfig

# The feeds there are, by the word in their URL: one per schedule, one per person.
KINDS = ("schedules", "people")


def feed_key(secret: str, kind: str, ident: str, generation: int) -> str:
    """The secret part of a feed URL: only someone given the URL can read the feed. Revoking the feed
    bumps its generation, which changes its key: the old URL stops working, the others do not."""
    message = f"ical:{kind}:{ident}:{generation}".encode()
    mac = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")[:32]  # 192 bits


def feed_path(secret: str, kind: str, ident: str, generation: int) -> str:
    return f"/ical/{kind}/{ident}.ics?key={feed_key(secret, kind, ident, generation)}"


def key_matches(secret: str, kind: str, ident: str, generation: int, given: str) -> bool:
    return hmac.compare_digest(given.encode(), feed_key(secret, kind, ident, generation).encode())


def schedule_spans(
    schedules: Sequence[Schedule],
    people: Mapping[str, PersonConfig],
    start: datetime,
    end: datetime,
    person: str | None = None,
) -> list[Span]:
    found = [s for schedule in schedules for s in spans(schedule, start, end, people)]
    return sorted((s for s in found if person is None or s.person == person), key=lambda s: s.start)


def calendar(
    name: str,
    turns: Sequence[Span],
    schedules: Mapping[str, Schedule],
    people: Mapping[str, PersonConfig],
    now: datetime,
) -> bytes:
    """One VEVENT per turn: "Ana on call: negotiator FR-75 (primary)"."""
    cal = Calendar()
    cal.add("prodid", "-//responder//on-call//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    for turn in turns:
        schedule = schedules[turn.schedule]
        person = people[turn.person]
        event = Event()
        regions = ", ".join(schedule.regions)
        event.add(
            "uid", f"{turn.schedule}.{turn.layer}.{turn.person}.{int(turn.start.timestamp())}@responder"
        )
        event.add("dtstamp", now)
        event.add("dtstart", turn.start)
        event.add("dtend", turn.end)
        override = " (override)" if turn.override else ""
        event.add("summary", f"{person.name} on call: {schedule.role} {regions} ({turn.layer}){override}")
        event.add("categories", [schedule.id])
        cal.add_component(event)
    return bytes(cal.to_ical())
