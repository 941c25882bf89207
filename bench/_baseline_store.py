"""The tables of bench/baseline_service.py and its one SQLite connection: the rows responder writes at
T+0 (case, event, tasks, pages), in a minimal schema of the baseline's own, and the queries on them."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiosqlite

# Statuses only move forward (responder's paging/status.py ranks); others change nothing.
STATUS_RANK = {
    "queued": 2,
    "accepted": 2,
    "sending": 3,
    "sent": 4,
    "delivered": 6,
    "read": 6,
    "undelivered": 7,
    "failed": 7,
}

PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON")
SCHEMA = """
CREATE TABLE IF NOT EXISTS "case" (
    id TEXT PRIMARY KEY,
    ref TEXT NOT NULL UNIQUE,
    alert_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    risk_level TEXT NOT NULL,
    is_live INTEGER NOT NULL,
    region TEXT,
    alert TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS case_event (
    id INTEGER PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES "case" (id),
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_case_event_case ON case_event (case_id);
CREATE TABLE IF NOT EXISTS case_task (
    id INTEGER PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES "case" (id),
    task TEXT NOT NULL,
    title TEXT NOT NULL,
    due_at TEXT NOT NULL,
    UNIQUE (case_id, task)
);
CREATE TABLE IF NOT EXISTS page (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES "case" (id),
    to_number TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    status_rank INTEGER NOT NULL,
    twilio_sid TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_page_case ON page (case_id);
"""
INSERT_CASE = (
    'INSERT INTO "case" (id, ref, alert_id, status, risk_level, is_live, region, alert, received_at) '
    "VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?)"
)
INSERT_EVENT = "INSERT INTO case_event (case_id, at, type, detail) VALUES (?, ?, 'alert_received', ?)"
INSERT_TASK = "INSERT INTO case_task (case_id, task, title, due_at) VALUES (?, ?, ?, ?)"
INSERT_PAGE = (
    "INSERT INTO page (id, case_id, to_number, body, status, status_rank, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)"
)
# A status callback may beat the API's answer here and move the status on first: keep its status then.
MARK_SENT = (
    "UPDATE page SET twilio_sid = :sid, error = :error, updated_at = :now, "
    "status = CASE WHEN status_rank < :rank THEN :status ELSE status END, "
    "status_rank = MAX(status_rank, :rank) WHERE id = :id"
)
MOVE_STATUS = (
    "UPDATE page SET status = :status, status_rank = :rank, updated_at = :now "
    "WHERE id = :id AND status_rank < :rank"
)


@dataclass(frozen=True)
class NewCase:
    """Every row of a new case, as INSERT_CASE, INSERT_EVENT, INSERT_TASK and INSERT_PAGE take them."""

    case: tuple[Any, ...]
    event: tuple[Any, ...]
    tasks: list[tuple[Any, ...]]
    pages: list[tuple[Any, ...]]


@dataclass(frozen=True)
class SendResult:
    """What Twilio answered for one page (sid None: the send failed, `error` says how)."""

    page_id: str
    sid: str | None
    status: str
    error: str | None = None


class Store:
    """One aiosqlite connection; a lock keeps each transaction whole (two never mix their statements)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> Store:
        conn = await aiosqlite.connect(path, isolation_level=None)  # we issue BEGIN ourselves
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        await conn.executescript(SCHEMA)
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def _fetch_one(self, sql: str, params: Sequence[Any]) -> sqlite3.Row | None:
        async with self._lock:
            cursor = await self._conn.execute(sql, params)
            return await cursor.fetchone()

    async def insert_case(self, new: NewCase) -> bool:
        """Commit the case with its event, tasks and pages; False when its alert_id or ref is taken."""
        try:
            async with self._transaction() as db:
                await db.execute(INSERT_CASE, new.case)
                await db.execute(INSERT_EVENT, new.event)
                await db.executemany(INSERT_TASK, new.tasks)
                await db.executemany(INSERT_PAGE, new.pages)
        except sqlite3.IntegrityError:
            return False
        return True

    async def case_of_alert(self, alert_id: str) -> str | None:
        row = await self._fetch_one('SELECT id FROM "case" WHERE alert_id = ?', (alert_id,))
        return None if row is None else str(row[0])

    async def ref_of(self, case_id: str) -> tuple[str, str] | None:
        """The case's ref and status."""
        row = await self._fetch_one('SELECT ref, status FROM "case" WHERE id = ?', (case_id,))
        return None if row is None else (str(row[0]), str(row[1]))

    async def mark_sent(self, results: Sequence[SendResult], now: str) -> None:
        """Store the sends' sids in one transaction (a status Twilio answers that we do not know: queued)."""
        rows = [
            {
                "id": r.page_id,
                "sid": r.sid,
                "error": r.error,
                "status": r.status,
                "rank": STATUS_RANK.get(r.status, STATUS_RANK["queued"]),
                "now": now,
            }
            for r in results
        ]
        async with self._transaction() as db:
            await db.executemany(MARK_SENT, rows)

    async def move_status(self, page_id: str, status: str, now: str) -> None:
        """A status callback: the page's status, if it is a known one and moves forward."""
        if (rank := STATUS_RANK.get(status)) is None:
            return
        async with self._lock:  # one statement: its own (autocommit) transaction
            await self._conn.execute(MOVE_STATUS, {"id": page_id, "status": status, "rank": rank, "now": now})
