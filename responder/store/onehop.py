"""SQLite: a whole transaction in one hop to the database thread.

Through SQLAlchemy's aiosqlite adapter every statement costs three or four hops between the event loop
and aiosqlite's thread (a cursor, the execute, the rows, the close), and each hop is a handover of the
GIL: on the intake's transaction (begin, the case, its events, its tasks, the flood count, the pages,
commit) they were the largest single cost of an alert. Here the statements are compiled once with
SQLAlchemy (its SQL and its column types' own bind processing), and the transaction runs as one
function on aiosqlite's thread against its sqlite3 connection: one hop in, one hop out.

It uses two private names of aiosqlite (`Connection._execute`, `Connection._conn`), pinned with
aiosqlite's version in pyproject.toml and exercised by every intake on SQLite in the suite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Table, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

Result = TypeVar("Result")
_DIALECT = sqlite.dialect()


class Prepared:
    """An INSERT into `model`'s table compiled once for SQLite: the SQL, and each row's values in its order,
    bind-processed by the columns' own types (UTC datetimes, JSON, booleans). A value missing from a
    row takes its column's scalar default, else NULL."""

    def __init__(self, model: type[SQLModel], or_ignore: bool = False) -> None:
        table: Table = model.__table__  # type: ignore[attr-defined]
        columns = [c for c in table.columns if not (c.primary_key and c.autoincrement is True)]
        statement = insert(table).prefix_with("OR IGNORE") if or_ignore else insert(table)
        compiled = statement.compile(dialect=_DIALECT, column_keys=[c.key for c in columns])
        self.sql = str(compiled)
        by_name = {c.key: c for c in columns}
        self._steps: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup or ():
            column = by_name[name]
            scalar = column.default is not None and column.default.is_scalar
            default = getattr(column.default, "arg", None) if scalar else None
            self._steps.append((name, default, column.type.bind_processor(_DIALECT)))

    def params(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = []
        for name, default, process in self._steps:
            value = row.get(name, default)
            values.append(process(value) if process is not None and value is not None else value)
        return tuple(values)

    def run(self, db: sqlite3.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            db.executemany(self.sql, [self.params(row) for row in rows])


class Statement:
    """Any Core statement (an UPDATE ... RETURNING, say) compiled once for SQLite: `params(values)`
    gives its positional parameters from the named ones, bind-processed, the statement's own
    literal values included."""

    def __init__(self, statement: Any) -> None:
        self._compiled = statement.compile(dialect=_DIALECT)
        self.sql = str(self._compiled)
        if "POSTCOMPILE" in self.sql:
            raise ValueError("a statement with an expanding IN cannot be compiled once")
        processors = self._compiled._bind_processors
        self._steps = [(name, processors.get(name)) for name in self._compiled.positiontup or ()]

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        named = self._compiled.construct_params(values)
        out = []
        for name, process in self._steps:
            value = named[name]
            out.append(process(value) if process is not None and value is not None else value)
        return tuple(out)


class Query:
    """A SELECT compiled once for SQLite (as Statement), its rows read back through each selected
    column's own result processing (UTC datetimes, JSON, booleans)."""

    def __init__(self, statement: Any) -> None:
        self._statement = Statement(statement)
        self._processors = [c.type.result_processor(_DIALECT, None) for c in statement.selected_columns]

    def rows(self, db: sqlite3.Connection, values: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        found = db.execute(self._statement.sql, self._statement.params(values or {})).fetchall()
        processors = self._processors
        return [
            tuple(v if p is None or v is None else p(v) for p, v in zip(processors, row, strict=True))
            for row in found
        ]


def bind(type_: Any, value: Any) -> Any:
    """A value as a column of `type_` stores it on SQLite (for a parameter of hand-written SQL)."""
    process = type_.bind_processor(_DIALECT)
    return process(value) if process is not None else value


async def transaction(conn: AsyncConnection, work: Callable[[sqlite3.Connection], Result]) -> Result:
    """Run `work` on the connection's aiosqlite thread between BEGIN IMMEDIATE and COMMIT (ROLLBACK if
    it raises): one hop. A constraint it breaks raises SQLAlchemy's IntegrityError, as a statement
    through SQLAlchemy would (the parameters are never in its text)."""
    raw = await conn.get_raw_connection()
    aio = raw.driver_connection
    assert aio is not None

    def in_thread() -> Result:
        db: sqlite3.Connection = aio._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    try:
        result: Result = await aio._execute(in_thread)
    except sqlite3.IntegrityError as exc:
        raise IntegrityError("one-hop transaction", None, exc, hide_parameters=True) from None
    except sqlite3.OperationalError as exc:
        # The lock not had within SQLite's busy timeout (another process holds it): the database did
        # not answer in time, a 503 to try again, as through SQLAlchemy, never a 500.
        raise OperationalError("one-hop transaction", None, exc, hide_parameters=True) from None
    return result


class Hops:
    """One transaction in as few hops as its work needs: a read, then (after the event loop has decided
    what to write) the writes with the COMMIT. The first hop opens it with BEGIN IMMEDIATE."""

    def __init__(self, aio: Any) -> None:
        self._aio = aio
        self.begun = self.ended = False

    async def run(self, work: Callable[[sqlite3.Connection], Result], last: bool = False) -> Result:
        """Run `work` on the database thread in the transaction; `last`: COMMIT in the same hop."""
        assert not self.ended, "the transaction has ended"
        begin = not self.begun

        def in_thread() -> Result:
            db: sqlite3.Connection = self._aio._conn
            if begin:
                db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                self.ended = True
                db.execute("ROLLBACK")
                raise
            if last:
                db.execute("COMMIT")
                self.ended = True
            return result

        self.begun = True
        try:
            result: Result = await self._aio._execute(in_thread)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError("one-hop transaction", None, exc, hide_parameters=True) from None
        # Cancelled while the thread worked: `ended` says whether it finished; hops() ends it if not.
        return result

    async def _end(self, statement: str) -> None:
        def in_thread() -> None:
            if self._aio._conn.in_transaction:  # a hop still running when we were cancelled may have ended it
                self._aio._conn.execute(statement)
            self.ended = True

        await self._aio._execute(in_thread)


@asynccontextmanager
async def hops(conn: AsyncConnection) -> AsyncIterator[Hops]:
    """A transaction on the connection's aiosqlite thread, run hop by hop (`Hops.run`). Left without a
    last hop it is committed; left by an exception, rolled back."""
    raw = await conn.get_raw_connection()
    transaction = Hops(raw.driver_connection)
    try:
        yield transaction
    except BaseException:
        if transaction.begun and not transaction.ended:
            await transaction._end("ROLLBACK")
        raise
    if transaction.begun and not transaction.ended:
        await transaction._end("COMMIT")
