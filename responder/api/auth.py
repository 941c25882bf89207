"""Who is calling the API: the bootstrap token from the environment, or a stored token scoped by role."""

from __future__ import annotations

import hmac

from aiohttp import web

from responder.accounts.service import Principal
from responder.accounts.tokens import PREFIX, token_principal
from responder.api.keys import CLOCK, DB, SETTINGS
from responder.domain import ACCOUNT_ROLES
from responder.errors import Forbidden, Unauthorized

# RESPONDER_API_TOKEN: for set-up and automation that must do everything (create the first users).
BOOTSTRAP = Principal("setup-token", frozenset(ACCOUNT_ROLES))


async def require_api(request: web.Request, *roles: str) -> Principal:
    """The caller when it presents a valid bearer token whose role is one of `roles`."""
    given = request.headers.get("Authorization", "")
    if not given.startswith("Bearer "):
        raise Unauthorized("Authorization: expected 'Bearer <token>'")
    token = given[7:].strip()
    expected = request.app[SETTINGS].env.api_token
    if expected and hmac.compare_digest(token, expected):
        return BOOTSTRAP
    principal = (
        await token_principal(request.app[DB], token, request.app[CLOCK].now())
        if token.startswith(PREFIX)
        else None
    )
    if principal is None:
        raise Unauthorized("Authorization: unknown or revoked token")
    if not principal.has(*roles):
        raise Forbidden(f"this token's role may not do this (needs one of: {', '.join(roles)})")
    return principal
