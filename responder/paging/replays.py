"""Replays of Twilio's webhooks: a signature carries no timestamp, so a captured ACK could be sent again
forever. Each inbound SMS (by MessageSid) and each key press (by call, menu step and digits) is acted on
once: its key is a row with a unique constraint, and a repeat finds the row and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from responder.paging import webhook_fields
from responder.store.db import Database
from responder.store.models import TwilioInbound
from responder.store.queries import rowcount

_RECORD = {
    "postgresql": postgresql.insert(TwilioInbound).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(TwilioInbound).on_conflict_do_nothing(),
}


def sms_key(message_sid: str | None) -> str:
    # Twilio always sends it; a signed request without one cannot be told from its replay.
    return f"sms:{webhook_fields.message_sid(message_sid)}"


def key_press_key(call_sid: str | None, page_id: str, menu_step: str, digits: str) -> str:
    """A key press on one playing of one page's menu; "*" then "1" are two presses, both news."""
    return f"key:{webhook_fields.call_sid(call_sid)}:{page_id}:{menu_step[:8]}:{digits[:8]}"


@asynccontextmanager
async def once(db: Database, key: str, now: datetime) -> AsyncIterator[bool]:
    """Yields True the first time `key` is seen, False for a replay. If acting on the first one fails,
    the key is forgotten again, so Twilio's retry of it is not mistaken for a replay."""
    async with db.engine.begin() as conn:
        dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
        first = rowcount(await conn.execute(_RECORD[dialect], {"key": key, "received_at": now})) == 1
    try:
        yield first
    except BaseException:
        if first:
            async with db.engine.begin() as conn:
                await conn.execute(delete(TwilioInbound).where(col(TwilioInbound.key) == key))
        raise
