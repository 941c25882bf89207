"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL via RESPONDER_DATABASE_URL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy.exc
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

Result = TypeVar("Result")

# The default bound on any database wait: a statement, a lock, a connection from the pool (seconds).
# A service that waits longer answers 503 instead (a platform retries; a 2xx means "stored").
DEFAULT_DEADLINE_S = 5.0


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, deadline_s: float = DEFAULT_DEADLINE_S) -> AsyncEngine:
    """An async engine; on SQLite every transaction takes the write lock up front (BEGIN IMMEDIATE).

    Deferred SQLite transactions that read, then write, fail with SQLITE_BUSY when another
    connection wrote in between; taking the lock at BEGIN makes them wait their turn instead.
    """
    # hide_parameters: a statement's parameters (an alert's fields, a phone) never enter an error's
    # text or SQLAlchemy's own log lines.
    if not is_sqlite(url):
        deadline_ms = str(int(deadline_s * 1000))
        return create_async_engine(
            url,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            pool_timeout=deadline_s,
            hide_parameters=True,
            connect_args={
                "timeout": deadline_s,  # to connect
                # asyncpg's own clock: holds even when the server is frozen and says nothing.
                "command_timeout": deadline_s,
                # The server's: a statement or a lock wait that runs too long is cancelled there.
                "server_settings": {"statement_timeout": deadline_ms, "lock_timeout": deadline_ms},
            },
        )
    _ensure_sqlite_dir(url)
    # SQLite has one writer at a time. One pooled connection makes our own transactions queue in
    # the pool (woken the moment it is free) instead of sleeping in SQLite's busy handler.
    engine = create_async_engine(
        url,
        connect_args={"timeout": deadline_s},
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=deadline_s,
        hide_parameters=True,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # What is deleted or overwritten (a redacted case's ciphertext) is zeroed in the file, not
        # left in free space (store/retention.py).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(deadline_s * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _ensure_sqlite_dir(url: str) -> None:
    """The database's folder, and its file made readable by its owner only (0600) before SQLite opens
    it: the person's data is in it, and SQLite gives the WAL and shared-memory files the permissions of
    the database file."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Never open an existing file here: closing any descriptor of it would drop the POSIX locks
        # SQLite holds on it in this process (another Database on the same file, say).
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)


class Database:
    """The engine plus a session factory; one per process."""

    def __init__(self, url: str, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        self.url, self.deadline_s = url, deadline_s
        self.engine = create_engine(url, deadline_s)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """One round trip to the database (readiness); raises what the driver raises."""
        async with self.sessions() as session:
            await session.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


_CLEANING: set[asyncio.Task[Any]] = set()  # cancelled work still closing its connections


async def within(deadline_s: float, work: Coroutine[Any, Any, Result]) -> Result:
    """`work`'s result, or TimeoutError at `deadline_s`, at once. A frozen database makes the
    cancelled work's clean-up (closing its connection, which waits on the server too) take seconds
    more: that goes on in the background instead of holding the answer back."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=deadline_s)
    if task in done:
        return task.result()
    task.cancel()
    _CLEANING.add(task)
    task.add_done_callback(_cleaned)
    raise TimeoutError(f"no answer within {deadline_s:g}s")


def _cleaned(task: asyncio.Task[Any]) -> None:
    _CLEANING.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: it was reported as the timeout already


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database did not answer in time or at all (503, try again), as
    opposed to a bug (500) or a conflict the caller must hear about."""
    if isinstance(exc, TimeoutError | sqlalchemy.exc.TimeoutError | ConnectionError):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return (
            bool(exc.connection_invalidated)
            or isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)
            or _timed_out(exc.orig)
        )
    return False


def _timed_out(orig: BaseException | None) -> bool:
    # asyncpg's QueryCanceledError (statement_timeout), LockNotAvailableError (lock_timeout).
    return orig is not None and type(orig).__name__ in ("QueryCanceledError", "LockNotAvailableError")
