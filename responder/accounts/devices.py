"""Known devices: a browser that logged in as a user gets a cookie, and its later attempts for that user
count on their own (login_limit.keys_for), so a burst of guesses elsewhere never locks the user out of
the phone they work cases from.

The cookie holds a random 256-bit token; only its SHA-256 is stored, with the user it belongs to. It
names a device for one user only: for any other username the browser is a stranger.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlmodel import col

from responder.accounts.passwords import token_hash
from responder.store.db import Database
from responder.store.models import LoginDevice, User

COOKIE = "responder_device"
# Long enough for a negotiator who works a few nights a month; the cookie and its row end together.
DEVICE_TTL = timedelta(days=90)


async def known_device(db: Database, token: str | None, username: str, now: datetime) -> str | None:
    """The hash of `token` when it is a live device of the account `username`; otherwise None."""
    if not token:
        return None
    hashed = token_hash(token)
    async with db.sessions() as session:
        found = (
            await session.execute(
                select(col(LoginDevice.token_hash))
                .join(User, col(User.id) == col(LoginDevice.user_id))
                .where(
                    col(LoginDevice.token_hash) == hashed,
                    col(User.username) == username,
                    col(LoginDevice.expires_at) > now,
                )
            )
        ).scalar_one_or_none()
    return found


async def remember_device(db: Database, user: User, known: str | None, now: datetime) -> str | None:
    """After a successful login: a new device token for this browser, or None if it is known already."""
    if known is not None:
        return None
    token = secrets.token_urlsafe(32)
    async with db.transaction() as session:
        await session.execute(
            delete(LoginDevice).where(col(LoginDevice.user_id) == user.id, col(LoginDevice.expires_at) <= now)
        )
        session.add(
            LoginDevice(
                token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=now + DEVICE_TTL
            )
        )
    return token
