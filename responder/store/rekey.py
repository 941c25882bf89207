"""`responder keys rotate`: every sealed value re-sealed under the keyring's first key.

It works in batches, each its own transaction, and picks up what is not yet under the first key: stopped
at any point (a crash, `--max-rows`), it goes on from where it was when run again. The service keeps
running meanwhile: give it the new keyring first (new key first, the old one after it), so that what it
writes is sealed under the new key and what it reads opens under either; drop the old key once the
rotation reports nothing left. Rows written before the columns were sealed are sealed by it too, and
values sealed for their column alone (before values were bound to their case) are sealed for their case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Table, Text, bindparam, cast, or_, select, type_coerce, update

from responder.store.db import Database
from responder.store.models import Case, CaseEvent
from responder.store.sealed import PERSONAL_DETAIL_KEYS, PREFIX, Keyring, key_of

CASE: Table = Case.__table__  # type: ignore[attr-defined]
EVENT: Table = CaseEvent.__table__  # type: ignore[attr-defined]
# The case columns sealed whole, and the timeline events that carry what staff wrote. The values are
# read and written as stored (type_coerce: the columns' own types would open and seal them).
_CASE_COLUMNS = {"alert": "case.alert", "outcome_note": "case.outcome_note"}
_PERSONAL_EVENTS = ("note", "case_resolved")


@dataclass
class Rotation:
    resealed: int = 0  # values re-sealed in this run
    left: bool = False  # stopped by max_rows with values still to do

    def room(self, max_rows: int | None) -> bool:
        if max_rows is not None and self.resealed >= max_rows:
            self.left = True
        return not self.left


def _resealed(keyring: Keyring, value: Any, context: str, case_id: str) -> str | None:
    """The value sealed under the first key for its case, or None when it already is."""
    if value is None:
        return None
    if key_of(value) == keyring.current and keyring.bound(value, context, case_id):
        return None
    plain = keyring.open(value, context, case_id) if key_of(value) is not None else str(value).encode()
    return keyring.seal(plain, context, case_id)


async def rotate(db: Database, keyring: Keyring, batch: int = 200, max_rows: int | None = None) -> Rotation:
    """Re-seal every sealed value under the first key, `batch` rows a transaction; `max_rows`: stop
    after re-sealing that many (the next run goes on)."""
    done = Rotation()
    for column, context in _CASE_COLUMNS.items():
        await _rotate_column(db, keyring, column, context, batch, max_rows, done)
    await _rotate_events(db, keyring, batch, max_rows, done)
    return done


async def _rotate_column(
    db: Database,
    keyring: Keyring,
    column: str,
    context: str,
    batch: int,
    max_rows: int | None,
    done: Rotation,
) -> None:
    raw = type_coerce(CASE.c[column], Text())
    write = (
        update(CASE)
        .where(CASE.c.id == bindparam("b_id"))
        .values({column: type_coerce(bindparam("b_v"), Text())})
    )
    after = ""
    while done.room(max_rows):
        async with db.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(CASE.c.id, raw).where(CASE.c.id > after).order_by(CASE.c.id).limit(batch)
                )
            ).all()
            for case_id, value in rows:
                if not done.room(max_rows):
                    return
                if (new := _resealed(keyring, value, context, case_id)) is not None:
                    await conn.execute(write, {"b_id": case_id, "b_v": new})
                    done.resealed += 1
        if len(rows) < batch:
            return
        after = rows[-1][0]


async def _rotate_events(
    db: Database, keyring: Keyring, batch: int, max_rows: int | None, done: Rotation
) -> None:
    raw = type_coerce(EVENT.c.detail, JSON())
    write = (
        update(EVENT)
        .where(EVENT.c.id == bindparam("b_id"))
        .values(detail=type_coerce(bindparam("b_d"), JSON()))
    )
    after = 0
    while done.room(max_rows):
        async with db.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(EVENT.c.id, EVENT.c.case_id, raw)
                    .where(
                        EVENT.c.id > after,
                        # Those that carry what staff wrote, and any other with a sealed value in it.
                        or_(
                            EVENT.c.type.in_(_PERSONAL_EVENTS), cast(EVENT.c.detail, Text()).contains(PREFIX)
                        ),
                    )
                    .order_by(EVENT.c.id)
                    .limit(batch)
                )
            ).all()
            for event_id, case_id, detail in rows:
                new = {
                    key: sealed
                    for key in PERSONAL_DETAIL_KEYS
                    if isinstance(detail.get(key), str)
                    and (sealed := _resealed(keyring, detail[key], f"case_event.detail.{key}", case_id))
                    is not None
                }
                if new and not done.room(max_rows):
                    return
                if new:
                    await conn.execute(write, {"b_id": event_id, "b_d": {**detail, **new}})
                    done.resealed += len(new)
        if len(rows) < batch:
            return
        after = rows[-1][0]
