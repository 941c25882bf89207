"""Contact flags: channels of a person that cannot be used, and what Twilio's error codes mean.

A flag is set by a STOP reply or by Twilio refusing a send with a code that says the channel is dead
for that number; START clears an opt-out. Flags live in the database and are copied into the roster,
where paging decisions read them: an SMS step pages a person whose SMS is flagged by voice instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from responder.store.models import ContactFlag
from responder.store.queries import rowcount

ALL = "all"


@dataclass(frozen=True)
class Meaning:
    """What a Twilio error code says about the number: which channel is dead (None: try again later)."""

    channel: str | None
    reason: str


ERROR_MEANINGS = {
    21610: Meaning("sms", "opted out of SMS (STOP)"),
    21614: Meaning("sms", "not a mobile number"),
    30006: Meaning("sms", "landline or unreachable carrier"),
    21211: Meaning(ALL, "invalid phone number"),
    30005: Meaning(ALL, "unknown destination number"),
    30003: Meaning(None, "handset unreachable"),
}
STOP_REASON = "opted out of SMS (STOP)"


def meaning_of(code: int | None) -> Meaning | None:
    return ERROR_MEANINGS.get(code) if code is not None else None


async def load_flags(session: AsyncSession) -> dict[str, frozenset[str]]:
    rows = await session.execute(select(col(ContactFlag.person_id), col(ContactFlag.channel)))
    found: dict[str, set[str]] = {}
    for person_id, channel in rows:
        found.setdefault(person_id, set()).add(channel)
    return {person_id: frozenset(channels) for person_id, channels in found.items()}


async def set_flag(
    session: AsyncSession,
    is_sqlite: bool,
    person_id: str,
    channel: str,
    reason: str,
    code: int | None,
    actor: str,
    now: datetime,
) -> bool:
    """Flag a channel; True when it was not flagged before (news to tell the manager)."""
    insert = sqlite.insert if is_sqlite else postgresql.insert
    row = {
        "person_id": person_id,
        "channel": channel,
        "reason": reason,
        "error_code": code,
        "since": now,
        "actor": actor,
    }
    result = await session.execute(insert(ContactFlag).values(row).on_conflict_do_nothing())
    return rowcount(result) == 1


async def clear_flag(session: AsyncSession, person_id: str, channel: str) -> bool:
    result = await session.execute(
        delete(ContactFlag).where(
            col(ContactFlag.person_id) == person_id, col(ContactFlag.channel) == channel
        )
    )
    return rowcount(result) == 1
