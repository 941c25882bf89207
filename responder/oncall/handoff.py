"""The hand-off SMS: a schedule with `handoff_sms: true` texts the person whose turn starts.

Each turn is claimed once in the database (replicas race on the same row), then sent; a failed send
drops the claim so the next beat tries again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from responder.logging import get_logger
from responder.oncall.roster import Roster
from responder.oncall.schedule import Span, spans
from responder.paging.messages import handoff_line, language_of
from responder.paging.twilio_client import SendFailed, TwilioGateway
from responder.store.db import Database
from responder.store.models import HandoffNotice
from responder.store.queries import rowcount

log = get_logger(__name__)
# After a restart, turns that began this recently still get their SMS (once: the claim dedupes).
CATCH_UP = timedelta(minutes=15)
AHEAD = timedelta(days=8)  # how far to look for the end of a turn, for the message


async def send_handoffs(
    db: Database, roster: Roster, gateway: TwilioGateway, since: datetime, now: datetime
) -> int:
    """Text everyone whose turn started in (since, now]; returns how many were sent."""
    sent = 0
    for schedule in roster.schedules:
        if not schedule.handoff_sms:
            continue
        for turn in spans(schedule, since, now + AHEAD, roster.people):
            if not since < turn.start <= now:
                continue
            if await _claim(db, turn, now) and await _send(db, roster, gateway, schedule.time_zone, turn):
                sent += 1
    return sent


async def _claim(db: Database, turn: Span, now: datetime) -> bool:
    insert = sqlite.insert if db.is_sqlite else postgresql.insert
    row = {
        "schedule_id": turn.schedule,
        "layer": turn.layer,
        "start_at": turn.start,
        "person_id": turn.person,
        "created_at": now,
    }
    async with db.transaction() as session:
        result = await session.execute(insert(HandoffNotice).values(row).on_conflict_do_nothing())
        return rowcount(result) == 1


async def _send(db: Database, roster: Roster, gateway: TwilioGateway, zone: str, turn: Span) -> bool:
    person = roster.people[turn.person]
    schedule = roster.schedule(turn.schedule)
    regions = ", ".join(schedule.regions) if schedule else ""
    role = schedule.role if schedule else ""
    until = turn.end.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") + f" ({zone})"
    body = handoff_line(language_of(person.languages), role, regions, turn.layer, until)
    try:
        await gateway.send_sms(person.phone, body, None)
    except SendFailed as exc:
        log.warning("handoff_sms_failed", schedule=turn.schedule, person_id=turn.person, error=str(exc))
        async with db.transaction() as session:
            await session.execute(
                delete(HandoffNotice).where(
                    col(HandoffNotice.schedule_id) == turn.schedule,
                    col(HandoffNotice.layer) == turn.layer,
                    col(HandoffNotice.start_at) == turn.start,
                )
            )
        return False
    log.info("handoff_sms_sent", schedule=turn.schedule, layer=turn.layer, person_id=turn.person)
    return True
