"""The login limit, counted in the database so that every replica shares it (issue 12, items 5 and 8).

Before a password is checked, the attempt takes a place on each of its keys in one transaction: an
upsert on the key's row, which PostgreSQL holds locked until the commit (SQLite has one writer). So
40 parallel guesses count 1, 2, ... 40 and only the first five go on to the password check. A failure
keeps its place for the rest of the window; a success gives it back. A key's window starts at its
first attempt and lasts 15 minutes; once it is over, the next attempt (or the housekeeping beat) ends
it and the count starts again.

An attempt refused while a key is locked is counted on that key's row, not written to the audit log
one by one: the log gets one row when a burst of refusals begins and one with its count when the
window is over (a flood of anonymous requests cannot push real entries off the auditor's page).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from responder.logging import get_logger
from responder.store.db import Database
from responder.store.models import AuditEvent, LoginLimit
from responder.store.types import UTCDateTime

log = get_logger(__name__)
WINDOW = timedelta(minutes=15)
# Failures per window: per username (or per known device of a user), and per client address, which
# bounds one address guessing many usernames.
USER_FAILURES, ADDRESS_FAILURES = 5, 20
# Usernames are at most 64 characters (accounts/service.py): a longer one is no account, and its key
# and audit actor are cut there.
NAME_CHARS = 64


@dataclass(frozen=True)
class Reservation:
    """The places an attempt took: the window of each key, so that a success gives back only its own."""

    windows: dict[str, datetime]


@dataclass(frozen=True)
class Locked:
    """The attempt was refused: `key` is locked until `until`."""

    key: str
    until: datetime


def name_key(username: str) -> str:
    return username.lower()[:NAME_CHARS]


def keys_for(username: str, address: str | None, device: str | None) -> list[str]:
    """The keys an attempt counts on, most specific first.

    A browser that logged in as this user before (`device`, the hash of its cookie) counts on its own:
    a burst of guesses from elsewhere never locks the user out of it. Anyone else counts on the
    username and on the client address.
    """
    if device is not None:
        return [f"device:{name_key(username)}:{device}"]
    return [f"user:{name_key(username)}", f"ip:{address or 'unknown'}"]


def limit_of(key: str) -> int:
    return ADDRESS_FAILURES if key.startswith("ip:") else USER_FAILURES


def kind_of(key: str) -> str:
    """What the audit log calls a key's lock: the username, the address or a known device."""
    return {"ip": "address", "user": "username", "device": "device"}[key.split(":", 1)[0]]


def actor_of(key: str) -> str:
    """Who a key's burst is recorded against: `login:<username>`, or `address:<client address>`."""
    kind, rest = key.split(":", 1)
    if kind == "ip":
        return f"address:{rest}"
    return f"login:{rest.split(':', 1)[0] if kind == 'device' else rest}"


def first_locked(keys: list[str], attempts: dict[str, int]) -> str | None:
    """The first key (most specific first) whose attempts, this one included, pass its limit."""
    return next((key for key in keys if attempts[key] > limit_of(key)), None)


async def reserve(db: Database, keys: list[str], now: datetime, address: str | None) -> Reservation | Locked:
    """Take a place on every key, or none if one is locked (then the refusal is counted on it)."""
    async with db.transaction() as session:
        attempts: dict[str, int] = {}
        windows: dict[str, datetime] = {}
        # One order everywhere: two attempts on the same keys never wait on each other in a cycle.
        for key in sorted(keys):
            for kind, refused in await _end_bursts(session, now, col(LoginLimit.key) == key):
                log.info("login_burst_audited", locked=kind, refused=refused)  # a window over starts anew
            row = (await session.execute(_take(db, key, now))).one()
            attempts[key], windows[key] = row.attempts, row.window_started_at
        locked = first_locked(keys, attempts)
        if locked is None:
            return Reservation(windows)
        await session.execute(
            update(LoginLimit)
            .where(col(LoginLimit.key).in_(keys))
            .values(attempts=col(LoginLimit.attempts) - 1)
        )
        until = windows[locked] + WINDOW
        await _count_refusal(session, locked, now, until, address)
        return Locked(locked, until)


async def release(db: Database, reservation: Reservation) -> None:
    """A success gives its places back: only a failure counts against the limit."""
    async with db.transaction() as session:
        for key in sorted(reservation.windows):
            await session.execute(
                update(LoginLimit)
                .where(
                    col(LoginLimit.key) == key,
                    col(LoginLimit.window_started_at) == reservation.windows[key],
                    col(LoginLimit.attempts) > 0,
                )
                .values(attempts=col(LoginLimit.attempts) - 1)
            )


async def flush_bursts(db: Database, now: datetime) -> int:
    """End every window that is over (the housekeeping beat): a burst is audited with its count even
    when no login comes after it. Returns how many bursts were written.

    SKIP LOCKED: a row another replica, or an attempt, is ending now is its to write, never twice.
    """
    over = (
        select(col(LoginLimit.key))
        .where(col(LoginLimit.window_started_at) <= now - WINDOW)
        .with_for_update(skip_locked=True)
    )
    async with db.transaction() as session:
        bursts = await _end_bursts(session, now, col(LoginLimit.key).in_(over))
    for locked, refused in bursts:  # once committed: whoever reads the log finds the audit row
        log.info("login_burst_audited", locked=locked, refused=refused)
    return len(bursts)


async def _end_bursts(session: AsyncSession, now: datetime, which: Any) -> list[tuple[str, int]]:
    """Delete the rows (among `which`) whose window is over; audit each burst of refusals with its count.
    Returns each burst's kind of key and count."""
    ended = (
        await session.execute(
            delete(LoginLimit)
            .where(which, col(LoginLimit.window_started_at) <= now - WINDOW)
            .returning(
                col(LoginLimit.key),
                col(LoginLimit.window_started_at),
                col(LoginLimit.refused),
                col(LoginLimit.first_refused_at),
                col(LoginLimit.last_refused_at),
            )
        )
    ).all()
    bursts = [row for row in ended if row.refused > 0]
    for row in bursts:
        await _audit(
            session,
            row.key,
            "login_throttle_ended",
            now,
            refused=row.refused,
            first_refused_at=row.first_refused_at.isoformat(),
            last_refused_at=row.last_refused_at.isoformat(),
            window_ended_at=(row.window_started_at + WINDOW).isoformat(),
        )
    return [(kind_of(row.key), row.refused) for row in bursts]


def _take(db: Database, key: str, now: datetime) -> Any:
    """Upsert one more attempt on `key`, returning its count and window (the row stays locked)."""
    dialect_insert = sqlite.insert if db.is_sqlite else postgresql.insert
    return (
        dialect_insert(LoginLimit)
        .values(key=key, window_started_at=now, attempts=1, refused=0)
        .on_conflict_do_update(index_elements=["key"], set_={"attempts": col(LoginLimit.attempts) + 1})
        .returning(col(LoginLimit.attempts), col(LoginLimit.window_started_at))
    )


async def _count_refusal(
    session: AsyncSession, key: str, now: datetime, until: datetime, address: str | None
) -> None:
    refused = (
        await session.execute(
            update(LoginLimit)
            .where(col(LoginLimit.key) == key)
            .values(
                refused=col(LoginLimit.refused) + 1,
                first_refused_at=func.coalesce(col(LoginLimit.first_refused_at), literal(now, UTCDateTime)),
                last_refused_at=now,
            )
            .returning(col(LoginLimit.refused))
        )
    ).scalar_one()
    if refused == 1:  # the burst begins: its count follows when the window is over
        await _audit(session, key, "login_throttled", now, ip=address, until=until.isoformat())


async def _audit(session: AsyncSession, key: str, action: str, now: datetime, **detail: Any) -> None:
    """An audit row in the counter's own transaction: a burst is counted once, with its rows."""
    await session.execute(
        insert(AuditEvent).values(
            at=now, actor=actor_of(key), action=action, detail={"locked": kind_of(key), **detail}
        )
    )
