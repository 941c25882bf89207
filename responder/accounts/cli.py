"""`responder users ...` and `responder tokens ...`: the first accounts, before any admin can log in,
and every later change from the command line (audited as `cli`). A refusal prints its field and
reason and exits 2; nothing is changed."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from responder.accounts import lifecycle, tokens
from responder.accounts.audit import audit
from responder.accounts.service import create_user, role_problems
from responder.clock import utcnow
from responder.domain import ACCOUNT_ROLES
from responder.errors import ConfigError, ResponderError
from responder.settings import Settings
from responder.store.db import Database
from responder.store.models import User

ACTOR = "cli"
_ROLE_HELP = f"repeatable: {', '.join(ACCOUNT_ROLES)}"


def add_parsers(sub: Any) -> None:
    """The `users` and `tokens` commands, on the top-level parser's subcommands."""
    users = sub.add_parser("users", help="web accounts").add_subparsers(dest="users_command", required=True)
    add = users.add_parser("add", help="create a user (asks for the password)")
    add.add_argument("username")
    add.add_argument("--role", action="append", required=True, help=_ROLE_HELP)
    add.add_argument("--person", default=None, help="their roster id (negotiators and investigators)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    listing = users.add_parser("list", help="every account, its roles and whether it is active")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    for name, about in (
        ("disable", "end their logins and revoke their tokens at once; they cannot log in"),
        ("enable", "let a disabled user log in again (their revoked tokens stay revoked)"),
    ):
        users.add_parser(name, help=about).add_argument("username")
    roles = users.add_parser("roles", help="replace a user's roles (from their next request on)")
    roles.add_argument("username")
    roles.add_argument("--role", action="append", required=True, help=_ROLE_HELP)
    roles.add_argument("--person", default=None, help="their roster id ('' unlinks; default: unchanged)")
    reset = users.add_parser("reset-password", help="a one-time password they must change at next login")
    reset.add_argument("username")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    api = sub.add_parser("tokens", help="API tokens").add_subparsers(dest="tokens_command", required=True)
    create = api.add_parser("create", help="create a token (printed once; stored hashed)")
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=ACCOUNT_ROLES)
    create.add_argument("--user", default=None, help="the user it acts for: revoked when they are disabled")
    api.add_parser("list", help="name, role, user, created, last used; never the token").add_argument(
        "--json", action="store_true", help="machine-readable output"
    )
    api.add_parser("revoke", help="the token stops working at once").add_argument("name")


@dataclass(frozen=True)
class Call:
    settings: Settings
    args: argparse.Namespace
    password: str  # asked before the event loop starts (add, reset-password); "" for the others
    db: Database
    now: datetime


def run(settings: Settings, args: argparse.Namespace) -> int:
    """One `users` or `tokens` command; a refusal raises ConfigError (exit 2, nothing changed)."""
    key = (args.command, args.users_command if args.command == "users" else args.tokens_command)
    if key == ("users", "add"):  # refused before a password is asked for
        _check_person(settings, args.person)
        if problems := role_problems(args.role, args.person):
            raise ConfigError([f"{p['field']}: {p['message']}" for p in problems], "refused")
    password = (
        _password(args.password_stdin) if key in (("users", "add"), ("users", "reset-password")) else ""
    )
    print(asyncio.run(_against_db(settings, args, password, COMMANDS[key])))
    return 0


async def _against_db(
    settings: Settings, args: argparse.Namespace, password: str, command: Callable[[Call], Awaitable[str]]
) -> str:
    db = Database(settings.env.database_url)
    try:
        return await command(Call(settings, args, password, db, utcnow()))
    except ResponderError as exc:
        raise ConfigError([f"{e['field']}: {e['message']}" for e in _problems(exc)], "refused") from None
    finally:
        await db.close()


def _password(from_stdin: bool) -> str:
    if not from_stdin and not sys.stdin.isatty():
        raise ConfigError(
            ["no terminal to ask for the password: pipe it in with --password-stdin"], "refused"
        )
    return sys.stdin.readline().rstrip("\n") if from_stdin else getpass.getpass("Password: ")


def _check_person(settings: Settings, person: str | None) -> None:
    if person and settings.person(person) is None:
        raise ConfigError([f"--person: {person!r} is not in {settings.env.config_path}"], "refused")


async def _add(call: Call) -> str:
    args = call.args
    await create_user(call.db, args.username, call.password, args.role, args.person, call.now)
    await audit(
        call.db, ACTOR, "user_created", call.now, username=args.username, roles=args.role, person=args.person
    )
    return f"user {args.username} created with roles {', '.join(args.role)}"


async def _disable(call: Call) -> str:
    username = call.args.username
    done = await lifecycle.disable_user(call.db, username, ACTOR, call.now)
    revoked = f", tokens revoked: {', '.join(done.tokens_revoked)}" if done.tokens_revoked else ""
    return f"user {username} disabled; sessions ended: {done.sessions_ended}{revoked}"


async def _enable(call: Call) -> str:
    await lifecycle.enable_user(call.db, call.args.username, ACTOR, call.now)
    return f"user {call.args.username} enabled (tokens revoked earlier stay revoked)"


async def _roles(call: Call) -> str:
    username, roles, person = call.args.username, call.args.role, call.args.person
    if person is None:  # unchanged
        found = next((u for u in await lifecycle.list_users(call.db) if u.username == username), None)
        person = found.person_id if found else None
    _check_person(call.settings, person)
    changed = await lifecycle.set_roles(call.db, username, roles, person or None, ACTOR, call.now)
    return f"user {username}: roles {', '.join(roles)}" + ("" if changed else " (unchanged)")


async def _reset(call: Call) -> str:
    username = call.args.username
    ended = await lifecycle.reset_password(call.db, username, call.password, ACTOR, call.now)
    return f"user {username}: one-time password set, to change at the next login; sessions ended: {ended}"


async def _create_token(call: Call) -> str:
    args = call.args
    return await tokens.create_token(call.db, args.name, args.role, call.now, ACTOR, args.user)


async def _revoke(call: Call) -> str:
    await tokens.revoke_token(call.db, call.args.name, ACTOR, call.now)
    return f"token {call.args.name} revoked"


async def _list_users(call: Call) -> str:
    users = await lifecycle.list_users(call.db)
    if call.args.json:
        return json.dumps([_user_json(u) for u in users], indent=2)
    rows = [("USERNAME", "ROLES", "PERSON", "STATE", "CREATED (UTC)")]
    rows += [
        (u.username, ",".join(u.roles), u.person_id or "-", _state(u), _time(u.created_at)) for u in users
    ]
    return _table(rows)


def _user_json(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "roles": user.roles,
        "person": user.person_id,
        "active": user.active,
        "must_change_password": user.must_change_password,
        "created_at": user.created_at.isoformat(),
    }


def _state(user: User) -> str:
    if not user.active:
        return "disabled"
    return "active, must change password" if user.must_change_password else "active"


async def _list_tokens(call: Call) -> str:
    found = await tokens.list_tokens(call.db)
    if call.args.json:
        return json.dumps([_token_json(t) for t in found], indent=2)
    rows = [("NAME", "ROLE", "USER", "CREATED (UTC)", "LAST USED", "STATE")]
    rows += [
        (
            t.name,
            t.role,
            t.username or "-",
            _time(t.created_at),
            _time(t.last_used_at) if t.last_used_at else "never",
            f"revoked {_time(t.revoked_at)}" if t.revoked_at else "active",
        )
        for t in found
    ]
    return _table(rows)


def _token_json(token: tokens.TokenInfo) -> dict[str, Any]:
    return {
        "name": token.name,
        "role": token.role,
        "user": token.username,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


def _time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)


COMMANDS: dict[tuple[str, str], Callable[[Call], Awaitable[str]]] = {
    ("users", "add"): _add,
    ("users", "list"): _list_users,
    ("users", "disable"): _disable,
    ("users", "enable"): _enable,
    ("users", "roles"): _roles,
    ("users", "reset-password"): _reset,
    ("tokens", "create"): _create_token,  # prints the token once; only its hash is stored
    ("tokens", "list"): _list_tokens,
    ("tokens", "revoke"): _revoke,
}


def _problems(exc: ResponderError) -> list[dict[str, str]]:
    return exc.detail if isinstance(exc.detail, list) else [{"field": "request", "message": str(exc.detail)}]
