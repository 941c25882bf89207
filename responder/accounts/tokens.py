"""API tokens: made, checked on every call, listed (never the secret) and revoked.

A token may act for a user (`tokens create NAME --role ROLE --user USERNAME`): then it works only
while that user is active and still holds its role, and disabling the user revokes it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from responder.accounts.audit import audit_in
from responder.accounts.passwords import token_hash
from responder.accounts.service import Principal
from responder.domain import ACCOUNT_ROLES
from responder.errors import Conflict, NotFound, ValidationFailed
from responder.store.db import Database
from responder.store.models import ApiToken, User

PREFIX = "rsp_"  # what tells a stored token from the set-up token (api/auth.py)
# last_used_at is kept to the minute: a busy integration writes its row once a minute, not per call.
TOKEN_USE_STEP = timedelta(minutes=1)
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class TokenInfo:
    """What `tokens list` shows: never the token, never its hash."""

    name: str
    role: str
    username: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


async def create_token(
    db: Database, name: str, role: str, now: datetime, actor: str, username: str | None = None
) -> str:
    """A new token, returned once (only its hash is stored); the change is audited."""
    problems = []
    if not _NAME.fullmatch(name):
        problems.append({"field": "name", "message": "1 to 64 letters, digits, '.', '-' or '_'"})
    if role not in ACCOUNT_ROLES:
        problems.append({"field": "role", "message": f"one of {', '.join(ACCOUNT_ROLES)}"})
    if problems:
        raise ValidationFailed(problems)
    token = PREFIX + secrets.token_urlsafe(32)
    try:
        async with db.transaction() as session:
            owner = await _owner(session, username, role)
            taken = await session.execute(select(col(ApiToken.name)).where(col(ApiToken.name) == name))
            if taken.first() is not None:
                raise Conflict([{"field": "name", "message": f"{name!r} is taken"}])
            session.add(
                ApiToken(
                    token_hash=token_hash(token),
                    name=name,
                    role=role,
                    created_at=now,
                    user_id=owner.id if owner else None,
                )
            )
            await audit_in(session, actor, "api_token_created", now, name=name, role=role, user=username)
    except IntegrityError:  # the same name, made at the same moment elsewhere
        raise Conflict([{"field": "name", "message": f"{name!r} is taken"}]) from None
    return token


async def _owner(session: AsyncSession, username: str | None, role: str) -> User | None:
    if username is None:
        return None
    user = (await session.execute(select(User).where(col(User.username) == username))).scalar_one_or_none()
    if user is None:
        raise NotFound([{"field": "user", "message": f"no user {username!r}"}])
    if not user.active:
        raise Conflict([{"field": "user", "message": f"{username!r} is disabled"}])
    if role not in user.roles:
        raise ValidationFailed(
            [{"field": "role", "message": f"{username!r} does not have the role {role!r}"}]
        )
    return user


async def token_principal(db: Database, token: str, now: datetime) -> Principal | None:
    """Who a bearer token acts as, or None: unknown, revoked, or its user disabled or without its role."""
    hashed = token_hash(token)
    async with db.sessions() as session:
        row = (
            await session.execute(
                select(ApiToken, User)
                .outerjoin(User, col(User.id) == col(ApiToken.user_id))
                .where(col(ApiToken.token_hash) == hashed)
            )
        ).first()
    if row is None:
        return None
    found, owner = row
    if found.revoked_at is not None or (
        found.user_id is not None and (owner is None or not owner.active or found.role not in owner.roles)
    ):
        return None
    if found.last_used_at is None or found.last_used_at <= now - TOKEN_USE_STEP:
        await _note_use(db, hashed, now)
    return Principal(f"token:{found.name}", frozenset({found.role}))


async def _note_use(db: Database, hashed: str, now: datetime) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(ApiToken)
            .where(
                col(ApiToken.token_hash) == hashed,
                or_(
                    col(ApiToken.last_used_at).is_(None),
                    col(ApiToken.last_used_at) <= now - TOKEN_USE_STEP,
                ),
            )
            .values(last_used_at=now)
        )


async def list_tokens(db: Database) -> list[TokenInfo]:
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(ApiToken, col(User.username))
                .outerjoin(User, col(User.id) == col(ApiToken.user_id))
                .order_by(col(ApiToken.name))
            )
        ).all()
    return [
        TokenInfo(t.name, t.role, username, t.created_at, t.last_used_at, t.revoked_at)
        for t, username in rows
    ]


async def revoke_token(db: Database, name: str, actor: str, now: datetime) -> None:
    """The token stops working on its next call; the change is audited."""
    async with db.transaction() as session:
        found = (
            await session.execute(select(ApiToken).where(col(ApiToken.name) == name))
        ).scalar_one_or_none()
        if found is None:
            raise NotFound([{"field": "name", "message": f"no token {name!r}"}])
        if found.revoked_at is not None:
            raise Conflict([{"field": "name", "message": f"{name!r} was revoked already"}])
        found.revoked_at = now
        await audit_in(session, actor, "api_token_revoked", now, name=name)


async def revoke_tokens_of(session: AsyncSession, user_id: str, now: datetime) -> list[str]:
    """Inside a change to the user (disabling them): revoke their live tokens; their names."""
    names = list(
        (
            await session.execute(
                select(col(ApiToken.name)).where(
                    col(ApiToken.user_id) == user_id, col(ApiToken.revoked_at).is_(None)
                )
            )
        ).scalars()
    )
    if names:
        await session.execute(
            update(ApiToken)
            .where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked_at).is_(None))
            .values(revoked_at=now)
        )
    return sorted(names)
