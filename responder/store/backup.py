"""`responder backup PATH`: a consistent copy of the database, taken while the service runs.

On SQLite it is SQLite's online backup API (`sqlite3.Connection.backup`) in one step: one read
transaction copies every page, the WAL's committed frames included, and in WAL mode that read neither
waits for the service's writes nor holds them up. The copy is a new file, readable by its owner alone
(0600) before SQLite writes a byte to it, and never an existing one. On PostgreSQL nothing is run: the
`pg_dump` line for this database is printed instead (docs/operations.md#backups).

A backup holds the person's data sealed, as the database does (store/sealed.py); the data keys and the
pseudonym key are in the environment, never in the database, so never in a backup either.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from responder.store.db import is_sqlite

# What the command prints after every backup, SQLite's or PostgreSQL's.
KEYS_APART = (
    "note: the backup holds the person's data sealed; the data keys that open it (RESPONDER_DATA_KEYS)"
    " and the pseudonym key (RESPONDER_PSEUDONYM_KEY) are not in it: keep them apart from it, and"
    " encrypt it (docs/operations.md#backups)"
)
PG_NOTE = (
    "note: give pg_dump the password in PGPASSWORD or ~/.pgpass, never on its command line; encrypt"
    " what it writes (age, gpg), or pipe its output into the encryption in place of -f"
)


class BackupRefused(Exception):
    """A backup not taken, with the one line that says why."""


@dataclass(frozen=True)
class Written:
    """What a SQLite backup wrote."""

    path: Path
    size_bytes: int
    revision: str | None  # the schema revision in the copy (None: never migrated)


def run(database_url: str, path: str) -> int:
    """The command: back up, say what was written and that the keys are kept apart; 2 if refused."""
    try:
        if not is_sqlite(database_url):
            print(pg_dump_line(database_url, path))
            print(PG_NOTE)
            print(KEYS_APART)
            return 0
        written = copy_sqlite(sqlite_path(database_url), Path(path))
    except BackupRefused as exc:
        print(f"responder: {exc}", file=sys.stderr)
        return 2
    revision = f"schema revision {written.revision}" if written.revision else "no schema revision"
    print(f"wrote {written.path} ({written.size_bytes} bytes, {revision}), readable by you alone")
    print(KEYS_APART)
    return 0


def sqlite_path(database_url: str) -> Path:
    """The file a SQLite URL names; refused for an in-memory database."""
    name = make_url(database_url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        raise BackupRefused(f"RESPONDER_DATABASE_URL names no database file to back up: {database_url}")
    return Path(name)


def copy_sqlite(source: Path, target: Path) -> Written:
    """A consistent copy of the live database `source` in the new file `target` (blocking: from async
    code, run it in a thread). A copy cut short is removed, so a second try can use the same path."""
    if not source.is_file():
        raise BackupRefused(f"no database at {source}: check RESPONDER_DATABASE_URL")
    try:
        # Created 0600 before SQLite opens it (as store/db.py does for the database), and never over an
        # existing file: an earlier backup, or the live database itself.
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise BackupRefused(f"{target} exists: give a new file (a backup never overwrites one)") from None
    except OSError as exc:
        raise BackupRefused(f"cannot create {target}: {exc.strerror}") from None
    try:
        revision = _backup(source, target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return Written(target, target.stat().st_size, revision)


def _backup(source: Path, target: Path) -> str | None:
    # mode=rw: a missing database is an error, not a new empty one. The source is only read.
    live = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True)
    try:
        copy = sqlite3.connect(target)
        try:
            live.backup(copy)  # pages=-1: every page in one step, so one snapshot of the database
            # The copy as a file that stands alone (no WAL beside it); a restored database is put back
            # into WAL mode by the service when it opens it (store/db.py).
            copy.execute("PRAGMA journal_mode=DELETE")
            return _revision(copy)
        finally:
            copy.close()
    finally:
        live.close()


def _revision(conn: sqlite3.Connection) -> str | None:
    with contextlib.suppress(sqlite3.OperationalError):  # no alembic_version: never migrated
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(row[0]) if row else None
    return None


def pg_dump_line(database_url: str, path: str) -> str:
    """The `pg_dump` command for this PostgreSQL database, in the custom format (`-Fc`, what
    `pg_restore` reads), writing to `path`; the URL's password is left out."""
    url = make_url(database_url)
    if not url.database:
        raise BackupRefused(f"RESPONDER_DATABASE_URL names no database: {url.render_as_string()}")
    words = ["pg_dump", "-Fc"]
    for flag, value in (("-h", url.host), ("-p", url.port), ("-U", url.username)):
        if value is not None:
            words += [flag, str(value)]
    words += ["-d", url.database, "-f", path]
    return shlex.join(words)
