"""SQLite transactions run hop by hop on aiosqlite's thread (store/onehop.py `hops`): the engine's due
step reads in one hop, decides on the event loop, and writes and commits in a second. Whatever happens
between the hops (an error, a cancellation), the transaction is ended and the one connection is left
fit for the next one."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from responder.store import onehop
from responder.store.db import Database
from responder.store.migrate import upgrade
from responder.store.types import UTCDateTime

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/responder.db")
    await upgrade(database)
    yield database
    await database.close()


def owners(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT owner FROM outbox_lease ORDER BY owner")]


def add(owner: str) -> Callable[[sqlite3.Connection], None]:
    def write(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO outbox_lease (owner, expires_at) VALUES (?, ?)",
            (owner, onehop.bind(UTCDateTime(), NOW)),
        )

    return write


async def stored(database: Database) -> list[str]:
    async with database.engine.connect() as conn:
        return await onehop.transaction(conn, owners)


async def test_a_read_then_the_writes_with_the_commit_take_two_hops(db: Database) -> None:
    async with db.engine.connect() as conn, onehop.hops(conn) as transaction:
        assert await transaction.run(owners) == []
        await transaction.run(add("a"), last=True)
        assert transaction.ended
    assert await stored(db) == ["a"]


async def test_left_without_a_last_hop_it_commits(db: Database) -> None:
    async with db.engine.connect() as conn, onehop.hops(conn) as transaction:
        await transaction.run(add("a"))
    assert await stored(db) == ["a"]


async def test_an_error_between_the_hops_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.engine.connect() as conn, onehop.hops(conn) as transaction:
            await transaction.run(add("a"))
            raise RuntimeError("the decision failed")
    assert await stored(db) == []  # and the connection takes the next transaction


async def test_an_error_in_a_hop_rolls_back_and_a_broken_constraint_is_an_integrity_error(
    db: Database,
) -> None:
    with pytest.raises(IntegrityError):
        async with db.engine.connect() as conn, onehop.hops(conn) as transaction:
            await transaction.run(add("a"))
            await transaction.run(add("a"), last=True)
    assert await stored(db) == []


async def test_a_cancellation_between_the_hops_rolls_back(db: Database) -> None:
    between = asyncio.Event()

    async def due_step() -> None:
        async with db.engine.connect() as conn, onehop.hops(conn) as transaction:
            await transaction.run(add("a"))
            between.set()
            await asyncio.Event().wait()  # deciding, for ever

    task = asyncio.create_task(due_step())
    await between.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await stored(db) == []
