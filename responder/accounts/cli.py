"""`responder users add` and `responder tokens create`: the first accounts, before any admin can log in."""

from __future__ import annotations

import asyncio
import getpass
import sys
from datetime import UTC, datetime

from responder.accounts.audit import audit
from responder.accounts.service import create_token, create_user
from responder.errors import ConfigError, ResponderError
from responder.settings import Settings
from responder.store.db import Database


def add_user(
    settings: Settings, username: str, roles: list[str], person: str | None, password_stdin: bool
) -> int:
    if person is not None and settings.person(person) is None:
        raise ConfigError([f"--person: {person!r} is not in {settings.env.config_path}"], "refused")
    if not password_stdin and not sys.stdin.isatty():
        raise ConfigError(
            ["no terminal to ask for the password: pipe it in with --password-stdin"], "refused"
        )
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("Password: ")
    return asyncio.run(_add_user(settings, username, password, roles, person))


async def _add_user(
    settings: Settings, username: str, password: str, roles: list[str], person: str | None
) -> int:
    db, now = Database(settings.env.database_url), datetime.now(UTC)
    try:
        await create_user(db, username, password, roles, person, now)
        await audit(db, "cli", "user_created", now, username=username, roles=roles, person=person)
    except ResponderError as exc:
        raise ConfigError([f"{e['field']}: {e['message']}" for e in _problems(exc)], "refused") from exc
    finally:
        await db.close()
    print(f"user {username} created with roles {', '.join(roles)}")
    return 0


def create_api_token(settings: Settings, name: str, role: str) -> int:
    return asyncio.run(_create_token(settings, name, role))


async def _create_token(settings: Settings, name: str, role: str) -> int:
    db, now = Database(settings.env.database_url), datetime.now(UTC)
    try:
        token = await create_token(db, name, role, now)
        await audit(db, "cli", "api_token_created", now, name=name, role=role)
    except ResponderError as exc:
        raise ConfigError([f"{e['field']}: {e['message']}" for e in _problems(exc)], "refused") from exc
    finally:
        await db.close()
    print(token)  # shown once; only its hash is stored
    return 0


def _problems(exc: ResponderError) -> list[dict[str, str]]:
    return exc.detail if isinstance(exc.detail, list) else [{"field": "request", "message": str(exc.detail)}]
