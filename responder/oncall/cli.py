"""`responder oncall who|gaps`: the roster from the command line (`feeds`: responder.oncall.ical_cli).

API overrides live in the database: they are included when the database is reachable and migrated,
otherwise the answer is from the files alone and says so.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from responder.clock import utcnow
from responder.errors import ConfigError
from responder.oncall.config import load_roster, pairs
from responder.oncall.roster import Roster
from responder.oncall.schedule import OnCall, gaps, hours_of
from responder.settings import Settings


def parse_at(raw: str | None) -> datetime:
    if raw is None:
        return utcnow()
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ConfigError([f"--at: {raw!r} is not an ISO 8601 time with a zone, e.g. 2026-12-24T03:00Z"])
    return at


async def _with_overrides(settings: Settings, roster: Roster) -> str:
    """Copy API overrides from the database into the roster; a note when that was not possible."""
    from responder.oncall.store import load_overrides
    from responder.store.db import Database
    from responder.store.migrate import is_up_to_date

    db = Database(settings.env.database_url)
    try:
        if not await is_up_to_date(db):
            return "database not migrated: overrides made through the API are not included"
        roster.set_overrides(await load_overrides(db, utcnow()))
        return ""
    except Exception as exc:  # any database trouble: answer from the files, and say so
        return f"database unreachable ({type(exc).__name__}): overrides made through the API are not included"
    finally:
        await db.close()


def roster_for(settings: Settings, use_db: bool) -> Roster:
    roster = load_roster(settings)
    url = settings.env.database_url
    if use_db and url.startswith("sqlite") and ":///" in url and not Path(url.split(":///", 1)[1]).exists():
        print("note: no database file yet: overrides made through the API are not included", file=sys.stderr)
    elif use_db:
        note = asyncio.run(_with_overrides(settings, roster))
        if note:
            print(f"note: {note}", file=sys.stderr)
    return roster


def who(
    settings: Settings,
    role: str,
    region: str | None,
    at_raw: list[str] | None,
    language: str | None,
    as_json: bool,
    use_db: bool,
) -> int:
    """Who, in order, at each time given (default now); exit 1 when nobody at all at some time."""
    roster = roster_for(settings, use_db)
    times = [parse_at(raw) for raw in at_raw] if at_raw else [parse_at(None)]
    answers = [(at, roster.who(role, region, at, language)) for at in times]
    if as_json:
        found = [
            {
                "role": role,
                "region": region,
                "at": at.isoformat(),
                "on_call": [
                    {
                        "person": o.person,
                        "layer": o.layer,
                        "schedule": o.schedule,
                        "region": o.region,
                        "override": o.override,
                    }
                    for o in on_call
                ],
            }
            for at, on_call in answers
        ]
        print(json.dumps(found[0] if len(found) == 1 else {"answers": found}))
    else:
        for at, on_call in answers:
            _print_who(roster, role, region, at, on_call)
    return 0 if all(on_call for _, on_call in answers) else 1


def _print_who(roster: Roster, role: str, region: str | None, at: datetime, found: list[OnCall]) -> None:
    where = region or "*"
    if not found:
        print(f"nobody is on call for {role} in {where} at {at.isoformat()} (not even the programme default)")
        return
    print(f"{role} in {where} at {at.isoformat()}:")
    for o in found:
        person = roster.people[o.person]
        via = f"schedule {o.schedule}" + (" (override)" if o.override else "")
        fell_back = f", fallback to {o.region}" if region and o.region != region else ""
        print(f"  {o.layer:<8} {person.name} ({person.id}, {person.phone}) via {via}{fell_back}")


def gap_report(settings: Settings, days: float, start_raw: str | None, as_json: bool, use_db: bool) -> int:
    """Every hour in the next `days` where a role in a region has nobody of its own; exit 1 if any."""
    roster = roster_for(settings, use_db)
    start = parse_at(start_raw).astimezone(UTC)
    end = start + timedelta(days=days)
    found = gaps(roster.schedules, roster.people, start, end, pairs(roster.schedules))
    rows = [
        {
            "role": gap.role,
            "region": gap.region,
            "hour": hour.isoformat().replace("+00:00", "Z"),
            "fallback": [o.person for o in gap.fallback],
        }
        for gap in found
        for hour in hours_of(gap)
    ]
    # An hour touched by two stretches of one gap (a fallback change) is listed once.
    rows = list({(r["role"], r["region"], r["hour"]): r for r in rows}.values())
    if as_json:
        print(json.dumps({"start": start.isoformat(), "end": end.isoformat(), "gaps": rows}))
    elif not rows:
        print(f"no gaps from {start.isoformat()} to {end.isoformat()}")
    else:
        for gap in found:
            fallback = ", ".join(o.person for o in gap.fallback) or "NOBODY"
            print(
                f"{gap.role} in {gap.region}: nobody from {gap.start.isoformat()} to {gap.end.isoformat()}"
                f" ({len(hours_of(gap))} h); paged instead: {fallback}"
            )
        print(f"{len(rows)} hours with a gap")
    return 1 if rows else 0
