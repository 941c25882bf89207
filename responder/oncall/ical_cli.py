"""`responder oncall feeds` and `responder ical url|revoke`: the secret calendar feed URLs, and
revoking one feed (a leaked URL) without changing the others."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from responder.accounts.audit import audit
from responder.clock import utcnow
from responder.errors import ConfigError
from responder.oncall import feeds as feed_store
from responder.oncall.config import load_roster
from responder.oncall.ical import feed_path
from responder.secret_checks import short_secret
from responder.settings import Settings
from responder.store.db import Database
from responder.store.migrate import is_up_to_date

# The command line's words for the feeds, and the word each has in the URL.
KIND_OF = {"schedule": "schedules", "person": "people"}
T = TypeVar("T")


def _secret(settings: Settings) -> str:
    secret = settings.env.ical_secret
    if not secret:
        raise ConfigError(
            ["environment RESPONDER_ICAL_SECRET: not set, so the calendar feeds are off: set it first"]
        )
    why = short_secret(secret)
    if why:
        raise ConfigError([f"environment RESPONDER_ICAL_SECRET: {why}"])
    return secret


async def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(settings.env.database_url)
    try:
        if not await is_up_to_date(db):
            raise ConfigError(["database schema is not up to date: run `responder db upgrade` first"])
        return await work(db)
    finally:
        await db.close()


def _known(settings: Settings, word: str, ident: str) -> str:
    """The URL's kind for `word`, once `ident` is known to be such a feed."""
    if word == "person":
        known = settings.person(ident) is not None
    else:
        known = load_roster(settings).schedule(ident) is not None
    if not known:
        raise ConfigError([f"ID: there is no {word} {ident!r}"], "refused")
    return KIND_OF[word]


def feeds(settings: Settings) -> int:
    """Every feed's current URL, per schedule and per person."""
    secret, base, roster = _secret(settings), settings.env.public_url, load_roster(settings)

    async def read(db: Database) -> dict[str, dict[str, int]]:
        return {kind: await feed_store.generations(db, kind) for kind in KIND_OF.values()}

    found = asyncio.run(_with_db(settings, read))
    for schedule in roster.schedules:
        generation = found["schedules"].get(schedule.id, 0)
        print(f"schedule {schedule.id}: {base}{feed_path(secret, 'schedules', schedule.id, generation)}")
    for person in roster.people.values():
        generation = found["people"].get(person.id, 0)
        print(f"person {person.id}: {base}{feed_path(secret, 'people', person.id, generation)}")
    return 0


def url(settings: Settings, word: str, ident: str) -> int:
    """The current URL of one feed."""
    secret, kind = _secret(settings), _known(settings, word, ident)

    async def read(db: Database) -> int:
        return await feed_store.generation(db, kind, ident)

    generation = asyncio.run(_with_db(settings, read))
    print(settings.env.public_url + feed_path(secret, kind, ident, generation))
    return 0


def revoke(settings: Settings, word: str, ident: str) -> int:
    """Revoke one feed (audited): its URL answers 404 from now on; print the new one."""
    secret, kind = _secret(settings), _known(settings, word, ident)

    async def bump(db: Database) -> int:
        now = utcnow()
        generation = await feed_store.revoke(db, kind, ident, now)
        await audit(db, "cli", "ical_feed_revoked", now, kind=kind, ident=ident, generation=generation)
        return generation

    generation = asyncio.run(_with_db(settings, bump))
    print(f"{word} {ident}: feed revoked, its old URL now answers 404. The new URL:")
    print(settings.env.public_url + feed_path(secret, kind, ident, generation))
    return 0
