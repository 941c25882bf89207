"""Users and web sessions (API tokens: accounts/tokens.py; later changes: accounts/lifecycle.py)."""

from __future__ import annotations

import functools
import secrets
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
from responder.domain import ACCOUNT_ROLES, PAGED_ROLES
from responder.errors import Conflict, ValidationFailed
from responder.store.db import Database
from responder.store.models import User, WebSession
from responder.store.queries import new_id

PERSON_REQUIRED = (
    "a negotiator or investigator must be linked to a roster person (--person),"
    " which is how the cases paged to them are known"
)
SESSION_TTL = timedelta(hours=12)
# The login limit (failures per username, per client address) is counted in the database:
# accounts/login_limit.py.


@dataclass(frozen=True)
class Principal:
    """Who is asking: a logged-in user or an API token."""

    name: str  # recorded as the actor: "user:ana" or "token:ci"
    roles: frozenset[str]
    person_id: str | None = None
    csrf_token: str | None = None
    must_change_password: bool = False  # an admin reset it: only /account/password opens

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


def role_problems(roles: list[str], person_id: str | None) -> list[dict[str, str]]:
    """What is wrong with giving an account these roles and this roster person."""
    unknown = [r for r in roles if r not in ACCOUNT_ROLES]
    if not roles or unknown:
        named = f"unknown {', '.join(repr(r) for r in unknown)}: " if unknown else ""
        return [{"field": "roles", "message": f"{named}one or more of {', '.join(ACCOUNT_ROLES)}"}]
    if set(PAGED_ROLES) & set(roles) and person_id is None:
        return [{"field": "person", "message": PERSON_REQUIRED}]
    return []


async def create_user(
    db: Database, username: str, password: str, roles: list[str], person_id: str | None, now: datetime
) -> User:
    problems = []
    if not username or len(username) > 64 or not username.replace(".", "").replace("-", "").isalnum():
        problems.append({"field": "username", "message": "1 to 64 letters, digits, '.' or '-'"})
    if (why := password_problem(password)) is not None:
        problems.append({"field": "password", "message": why})
    problems += role_problems(roles, person_id)
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
    return Principal(
        f"user:{user.username}",
        frozenset(user.roles),
        user.person_id,
        web_session.csrf_token,
        user.must_change_password,
    )


async def close_session(db: Database, token: str) -> None:
    async with db.transaction() as session:
        await session.execute(delete(WebSession).where(col(WebSession.token_hash) == token_hash(token)))
