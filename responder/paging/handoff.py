"""The hand-off SMS: a schedule with `handoff_sms: true` texts the person whose turn starts.

Each turn is claimed once in the database (replicas race on the same row) in the same transaction that
writes its SMS as an outbox row: the outbox sends it like any notice (retried while Twilio cannot take
it, counted by the flood limit), so there is one sender and nothing is sent around it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.dialects import postgresql, sqlite

from responder.logging import get_logger
from responder.oncall.roster import Roster
from responder.oncall.schedule import Span, spans
from responder.paging.messages import handoff_line, language_of
from responder.store.db import Database
from responder.store.models import HandoffNotice
from responder.store.queries import insert_pages, notice_row, rowcount

log = get_logger(__name__)
# After a restart, turns that began this recently still get their SMS (once: the claim dedupes).
CATCH_UP = timedelta(minutes=15)
AHEAD = timedelta(days=8)  # how far to look for the end of a turn, for the message


async def queue_handoffs(db: Database, roster: Roster, since: datetime, now: datetime) -> int:
    """Write the SMS of everyone whose turn started in (since, now] to the outbox; returns how many
    (the caller kicks the outbox)."""
    queued = 0
    for schedule in roster.schedules:
        if not schedule.handoff_sms:
            continue
        for turn in spans(schedule, since, now + AHEAD, roster.people):
            if since < turn.start <= now and await _queue(db, roster, schedule.time_zone, turn, now):
                queued += 1
    return queued


async def _queue(db: Database, roster: Roster, zone: str, turn: Span, now: datetime) -> bool:
    person = roster.people[turn.person]
    channel = roster.channel_for(person, "sms")
    if channel is None:
        log.warning("handoff_sms_unusable", schedule=turn.schedule, person_id=turn.person)
        return False
    insert = sqlite.insert if db.is_sqlite else postgresql.insert
    claim = {
        "schedule_id": turn.schedule,
        "layer": turn.layer,
        "start_at": turn.start,
        "person_id": turn.person,
        "created_at": now,
    }
    schedule = roster.schedule(turn.schedule)
    regions = ", ".join(schedule.regions) if schedule else ""
    role = schedule.role if schedule else ""
    until = turn.end.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") + f" ({zone})"
    body = handoff_line(language_of(person.languages), role, regions, turn.layer, until)
    async with db.transaction() as session:
        result = await session.execute(insert(HandoffNotice).values(claim).on_conflict_do_nothing())
        if rowcount(result) != 1:
            return False  # another replica (or an earlier beat) has this turn
        await insert_pages(session, [notice_row(None, person.id, body, now, channel)])
    log.info("handoff_sms_queued", schedule=turn.schedule, layer=turn.layer, person_id=turn.person)
    return True
