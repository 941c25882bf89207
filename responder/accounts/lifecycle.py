"""An account after it is made: disabled, enabled, its roles changed, a one-time password set by an
admin, a password changed by its user. Each change and its audit row share one transaction.

Every change locks the accounts (PostgreSQL: all rows, in id order; SQLite has one writer), so two
admins disabling each other at the same moment cannot both pass the last-admin check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from responder.accounts.audit import audit_in
from responder.accounts.passwords import (
    hash_password_off_loop,
    password_problem,
    token_hash,
    verify_password_off_loop,
)
from responder.accounts.service import role_problems
from responder.accounts.tokens import revoke_tokens_of
from responder.domain import ADMIN
from responder.errors import Conflict, NotFound, ValidationFailed
from responder.store.db import Database
from responder.store.models import User, WebSession

LAST_ADMIN = "the last active admin: make another admin first, so that someone can still manage accounts"


@dataclass(frozen=True)
class Disabled:
    sessions_ended: int
    tokens_revoked: list[str]  # their names


def leaves_no_admin(users: list[User], target: User, roles_after: list[str], active_after: bool) -> bool:
    """Whether changing `target` so would take away the last active admin (nobody could manage
    accounts on the web any more)."""
    was_admin = target.active and ADMIN in target.roles
    still_admin = active_after and ADMIN in roles_after
    others = any(u.active and ADMIN in u.roles for u in users if u.id != target.id)
    return was_admin and not still_admin and not others


async def list_users(db: Database) -> list[User]:
    async with db.sessions() as session:
        return list((await session.execute(select(User).order_by(col(User.username)))).scalars().all())


async def disable_user(db: Database, username: str, actor: str, now: datetime) -> Disabled:
    """Their logins end at once (sessions deleted) and their tokens are revoked."""
    async with db.transaction() as session:
        users, user = await _locked(session, username)
        if actor == f"user:{username}":
            raise Conflict([{"field": "username", "message": "you cannot disable your own account"}])
        if not user.active:
            raise Conflict([{"field": "username", "message": f"{username!r} is disabled already"}])
        if leaves_no_admin(users, user, user.roles, active_after=False):
            raise Conflict([{"field": "username", "message": f"{username!r} is {LAST_ADMIN}"}])
        user.active = False
        ended = await _end_sessions(session, user.id)
        revoked = await revoke_tokens_of(session, user.id, now)
        await audit_in(
            session,
            actor,
            "user_disabled",
            now,
            username=username,
            sessions_ended=ended,
            tokens_revoked=revoked,
        )
    return Disabled(ended, revoked)


async def enable_user(db: Database, username: str, actor: str, now: datetime) -> None:
    """They may log in again; the tokens revoked when they were disabled stay revoked."""
    async with db.transaction() as session:
        _, user = await _locked(session, username)
        if user.active:
            raise Conflict([{"field": "username", "message": f"{username!r} is active already"}])
        user.active = True
        await audit_in(session, actor, "user_enabled", now, username=username)


async def set_roles(
    db: Database, username: str, roles: list[str], person_id: str | None, actor: str, now: datetime
) -> bool:
    """New roles (and roster person), from the next request on; False when nothing changed.
    `person_id` must be checked against the roster by the caller."""
    if problems := role_problems(roles, person_id):
        raise ValidationFailed(problems)
    async with db.transaction() as session:
        users, user = await _locked(session, username)
        if sorted(user.roles) == sorted(roles) and user.person_id == person_id:
            return False
        if leaves_no_admin(users, user, roles, user.active):
            raise Conflict([{"field": "roles", "message": f"{username!r} is {LAST_ADMIN}"}])
        before, person_before = user.roles, user.person_id
        user.roles, user.person_id = list(roles), person_id
        await audit_in(
            session,
            actor,
            "user_roles_changed",
            now,
            username=username,
            roles_before=before,
            roles=list(roles),
            person_before=person_before,
            person=person_id,
        )
    return True


async def reset_password(db: Database, username: str, password: str, actor: str, now: datetime) -> int:
    """An admin's one-time password: the user must set their own at the next login. Their open
    sessions end. Returns how many."""
    if (why := password_problem(password)) is not None:
        raise ValidationFailed([{"field": "password", "message": why}])
    hashed = await hash_password_off_loop(password)
    async with db.transaction() as session:
        _, user = await _locked(session, username)
        user.password_hash, user.must_change_password = hashed, True
        ended = await _end_sessions(session, user.id)
        await audit_in(session, actor, "password_reset", now, username=username, sessions_ended=ended)
    return ended


@dataclass(frozen=True)
class PasswordChange:
    """What a user types on /account/password."""

    current: str
    new: str
    new_again: str


async def change_password(
    db: Database, username: str, change: PasswordChange, session_token: str, now: datetime
) -> None:
    """A user's own change: the current password first. Their other sessions end; this one stays."""
    problems = []
    if (why := password_problem(change.new)) is not None:
        problems.append({"field": "new_password", "message": why})
    elif change.new == change.current:
        problems.append({"field": "new_password", "message": "choose a password other than the current one"})
    if change.new_again != change.new:
        problems.append({"field": "new_password_again", "message": "not the same as the new password"})
    async with db.sessions() as session:
        stored = (
            await session.execute(select(col(User.password_hash)).where(col(User.username) == username))
        ).scalar_one()
    if not await verify_password_off_loop(change.current, stored):
        problems.insert(0, {"field": "current_password", "message": "wrong password"})
    if problems:
        raise ValidationFailed(problems)
    hashed = await hash_password_off_loop(change.new)
    async with db.transaction() as session:
        _, user = await _locked(session, username)
        user.password_hash, user.must_change_password = hashed, False
        ended = await _end_sessions(session, user.id, keep=token_hash(session_token))
        await audit_in(session, f"user:{username}", "password_changed", now, sessions_ended=ended)


async def _locked(session: AsyncSession, username: str) -> tuple[list[User], User]:
    """Every account, locked for this transaction, and the one named."""
    users = list(
        (await session.execute(select(User).order_by(col(User.id)).with_for_update())).scalars().all()
    )
    found = next((u for u in users if u.username == username), None)
    if found is None:
        raise NotFound([{"field": "username", "message": f"no user {username!r}"}])
    return users, found


async def _end_sessions(session: AsyncSession, user_id: str, keep: str | None = None) -> int:
    condition = [col(WebSession.user_id) == user_id]
    if keep is not None:
        condition.append(col(WebSession.token_hash) != keep)
    ended = await session.execute(delete(WebSession).where(*condition))
    return int(ended.rowcount or 0)  # type: ignore[attr-defined]
