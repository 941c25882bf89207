"""Password hashing with scrypt (memory-hard, in the standard library): 16 MiB and ~50 ms a guess."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

N, R, P = 2**14, 8, 1  # 128 * N * R bytes = 16 MiB of memory per hash
MIN_LENGTH = 10
# scrypt is ~50 ms of CPU: never on the event loop (150 parallel logins once made escalation steps
# 10 s late). Two at a time, on their own threads: a burst of guesses queues here, not in front of
# pages, and holds at most 32 MiB.
HASHING_AT_ONCE = 2
_HASHING = ThreadPoolExecutor(max_workers=HASHING_AT_ONCE, thread_name_prefix="scrypt")


async def hash_password_off_loop(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, hash_password, password)


async def verify_password_off_loop(password: str, stored: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, verify_password, password, stored)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        found = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=32, maxmem=2**26
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, _unb64(digest))


def password_problem(password: str) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"at least {MIN_LENGTH} characters"
    if len(password) > 1024:
        return "at most 1024 characters"
    return None


def token_hash(token: str) -> str:
    """Session and API tokens are random (256 bits): a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
