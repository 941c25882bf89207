"""A login attempt: the limit first (a place taken in the database), then the password, off the loop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from responder.accounts.audit import audit
from responder.accounts.devices import known_device, remember_device
from responder.accounts.login_limit import NAME_CHARS, Locked, keys_for, release, reserve
from responder.accounts.passwords import HASHING_AT_ONCE
from responder.accounts.service import authenticate
from responder.store.db import Database
from responder.store.models import User

# Logins worked on at once per process: two hashing (passwords.HASHING_AT_ONCE) and two reading or
# writing the database. A burst of logins waits its turn in memory, never with hundreds of
# transactions queued in the database's pool ahead of the engine's (that made steps 1.5 s late).
LOGINS_AT_ONCE = 2 * HASHING_AT_ONCE


@dataclass(frozen=True)
class LoginAttempt:
    username: str
    password: str
    address: str | None  # the client, as the trusted proxies name it (api/forwarded.py)
    device_token: str | None  # the browser's known-device cookie, if it sent one


@dataclass(frozen=True)
class LoginResult:
    user: User | None = None
    locked_until: datetime | None = None
    new_device_token: str | None = None  # set it as the browser's device cookie


async def log_in(db: Database, attempt: LoginAttempt, now: datetime) -> LoginResult:
    """Refused while a key is locked; else the password is checked, and a failure is audited."""
    device = await known_device(db, attempt.device_token, attempt.username, now)
    taken = await reserve(db, keys_for(attempt.username, attempt.address, device), now, attempt.address)
    if isinstance(taken, Locked):
        return LoginResult(locked_until=taken.until)
    user = await authenticate(db, attempt.username, attempt.password)
    if user is None:  # the place taken stays: a failure, counted for the rest of the window
        actor = f"login:{attempt.username[:NAME_CHARS]}"
        await audit(db, actor, "login_failed", now, ip=attempt.address, known_device=device is not None)
        return LoginResult()
    await release(db, taken)
    return LoginResult(user=user, new_device_token=await remember_device(db, user, device, now))
