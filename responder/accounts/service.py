"""Users, web sessions and API tokens."""

from __future__ import annotations

import functools
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlmodel import col

from responder.accounts.passwords import (
    hash_password,
    hash_password_off_loop,
    password_problem,
    token_hash,
    verify_password_off_loop,
)
from responder.errors import Conflict, ValidationFailed
from responder.store.db import Database
from responder.store.models import ApiToken, User, WebSession
from responder.store.queries import new_id

ROLES = ("negotiator", "investigator", "team_lead", "manager", "admin", "auditor")
# Who sees every case (everyone else sees the cases paged to them).
SEES_ALL_CASES = frozenset({"team_lead", "manager"})
SESSION_TTL = timedelta(hours=12)
# Logins: at most this many failures per username, and per client address, in the window.
LOGIN_FAILURES, ADDRESS_FAILURES, LOGIN_WINDOW = 5, 20, timedelta(minutes=15)


@dataclass(frozen=True)
class Principal:
    """Who is asking: a logged-in user or an API token."""

    name: str  # recorded as the actor: "user:ana" or "token:ci"
    roles: frozenset[str]
    person_id: str | None = None
    csrf_token: str | None = None

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


async def create_user(
    db: Database, username: str, password: str, roles: list[str], person_id: str | None, now: datetime
) -> User:
    problems = []
    if not username or len(username) > 64 or not username.replace(".", "").replace("-", "").isalnum():
        problems.append({"field": "username", "message": "1 to 64 letters, digits, '.' or '-'"})
    if (why := password_problem(password)) is not None:
        problems.append({"field": "password", "message": why})
    unknown = [r for r in roles if r not in ROLES]
    if not roles or unknown:
        named = f"unknown {', '.join(repr(r) for r in unknown)}: " if unknown else ""
        problems.append({"field": "roles", "message": f"{named}one or more of {', '.join(ROLES)}"})
    if problems:
        raise ValidationFailed(problems)
    user = User(
        id=new_id(),
        username=username,
        person_id=person_id,
        roles=roles,
        password_hash=await hash_password_off_loop(password),
        created_at=now,
    )
    async with db.transaction() as session:
        taken = (await session.execute(select(User).where(col(User.username) == username))).first()
        if taken is not None:
            raise Conflict([{"field": "username", "message": f"{username!r} is taken"}])
        session.add(user)
    return user


class LoginThrottle:
    """Failed logins per key (a username, a client address), in memory, per process."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[datetime]] = {}

    def blocked(self, keys: list[str], now: datetime) -> bool:
        return any(
            len(self._recent(k, now)) >= (ADDRESS_FAILURES if k.startswith("ip:") else LOGIN_FAILURES)
            for k in keys
        )

    def failed(self, keys: list[str], now: datetime) -> None:
        for key in keys:
            self._recent(key, now).append(now)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        found = self._failures.setdefault(key, deque())
        while found and found[0] <= now - LOGIN_WINDOW:
            found.popleft()
        return found


async def authenticate(db: Database, username: str, password: str) -> User | None:
    async with db.sessions() as session:
        user = (
            await session.execute(select(User).where(col(User.username) == username))
        ).scalar_one_or_none()
    if user is None:
        await verify_password_off_loop(password, _dummy_hash())  # the same time for unknown users
        return None
    if not user.active or not await verify_password_off_loop(password, user.password_hash):
        return None
    return user


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown usernames against (made once, on the first unknown login)."""
    return hash_password(secrets.token_urlsafe(16))


async def open_session(db: Database, user: User, now: datetime) -> tuple[str, str]:
    """A new session: returns (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    async with db.transaction() as session:
        await session.execute(delete(WebSession).where(col(WebSession.expires_at) < now))
        session.add(
            WebSession(
                token_hash=token_hash(token),
                user_id=user.id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + SESSION_TTL,
            )
        )
    return token, csrf


async def session_principal(db: Database, token: str, now: datetime) -> Principal | None:
    async with db.sessions() as session:
        row = (
            await session.execute(
                select(WebSession, User)
                .join(User, col(User.id) == col(WebSession.user_id))
                .where(col(WebSession.token_hash) == token_hash(token))
            )
        ).first()
    if row is None:
        return None
    web_session, user = row
    if web_session.expires_at < now or not user.active:
        return None
    return Principal(f"user:{user.username}", frozenset(user.roles), user.person_id, web_session.csrf_token)


async def close_session(db: Database, token: str) -> None:
    async with db.transaction() as session:
        await session.execute(delete(WebSession).where(col(WebSession.token_hash) == token_hash(token)))


async def create_token(db: Database, name: str, role: str, now: datetime) -> str:
    if role not in ROLES:
        raise ValidationFailed([{"field": "role", "message": f"one of {', '.join(ROLES)}"}])
    token = "rsp_" + secrets.token_urlsafe(32)
    async with db.transaction() as session:
        session.add(ApiToken(token_hash=token_hash(token), name=name, role=role, created_at=now))
    return token


async def token_principal(db: Database, token: str) -> Principal | None:
    async with db.sessions() as session:
        row = await session.get(ApiToken, token_hash(token))
    if row is None or row.revoked_at is not None:
        return None
    return Principal(f"token:{row.name}", frozenset({row.role}))
