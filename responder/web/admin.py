"""/admin/users for admins: accounts made, disabled and enabled, their roles changed, one-time passwords
set; API tokens listed and revoked. One small CSRF-checked form per action on each row; every change
is audited with who made it (accounts/lifecycle.py, accounts/tokens.py), never with a password."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import MultiDictProxy

from responder.accounts import lifecycle, tokens
from responder.accounts.audit import audit
from responder.accounts.service import Principal, create_user
from responder.api.keys import CLOCK, DB, ROSTER
from responder.domain import ACCOUNT_ROLES, ADMIN
from responder.errors import Conflict, ValidationFailed
from responder.web.views import checked_form, field_errors, login_required, render, sentence

routes = web.RouteTableDef()
# What an action on one row does, given the form: the message shown once it is done.
Action = Callable[[web.Request, Principal, str, MultiDictProxy[str]], Awaitable[str]]


@routes.get("/admin/users")
async def users_page(request: web.Request) -> web.Response:
    principal = await login_required(request, ADMIN)
    return await _render_users(request, principal)


async def _render_users(
    request: web.Request,
    principal: Principal,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    message: str = "",
    row_errors: dict[str, str] | None = None,
) -> web.Response:
    return render(
        "users.html",
        status,
        principal=principal,
        users=await lifecycle.list_users(request.app[DB]),
        tokens=await tokens.list_tokens(request.app[DB]),
        roles=ACCOUNT_ROLES,
        people=list(request.app[ROSTER].people.values()),
        errors=errors or {},
        form=form or {},
        message=message,
        row_errors=row_errors or {},
    )


@routes.post("/admin/users")
async def add_user(request: web.Request) -> web.Response:
    principal = await login_required(request, ADMIN)
    form = await checked_form(request, principal)
    username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    roles = [str(r) for r in form.getall("roles", [])]
    person = str(form.get("person", "")) or None
    if person is not None and request.app[ROSTER].person(person) is None:
        return await _render_users(
            request, principal, 422, {"person": "Not in the roster."}, {"username": username}
        )
    now = request.app[CLOCK].now()
    try:
        await create_user(request.app[DB], username, password, roles, person, now)
    except (ValidationFailed, Conflict) as exc:
        errors = field_errors(_problems(exc, "username"))
        return await _render_users(request, principal, 422, errors, {"username": username})
    await audit(
        request.app[DB], principal.name, "user_created", now, username=username, roles=roles, person=person
    )
    return await _render_users(request, principal, message=f"User {username} created.")


async def _on_row(request: web.Request, action: Action, kind: str = "user") -> web.Response:
    """An action on the user (or token) named in the path: done and shown, or refused next to its row.
    An unknown name is a 404 (the errors middleware)."""
    principal = await login_required(request, ADMIN)
    form = await checked_form(request, principal)
    name = request.match_info["name"]
    try:
        message = await action(request, principal, name, form)
    except (ValidationFailed, Conflict) as exc:
        text = "; ".join(f"{p['field']}: {p['message']}" for p in _problems(exc, "name"))
        return await _render_users(
            request, principal, exc.status, row_errors={f"{kind}:{name}": sentence(text)}
        )
    return await _render_users(request, principal, message=message)


async def _disable(request: web.Request, principal: Principal, username: str, _: MultiDictProxy[str]) -> str:
    done = await lifecycle.disable_user(request.app[DB], username, principal.name, request.app[CLOCK].now())
    revoked = f"; tokens revoked: {', '.join(done.tokens_revoked)}" if done.tokens_revoked else ""
    return f"User {username} disabled; open sessions ended: {done.sessions_ended}{revoked}."


async def _enable(request: web.Request, principal: Principal, username: str, _: MultiDictProxy[str]) -> str:
    await lifecycle.enable_user(request.app[DB], username, principal.name, request.app[CLOCK].now())
    return f"User {username} enabled."


async def _roles(request: web.Request, principal: Principal, username: str, form: MultiDictProxy[str]) -> str:
    roles = [str(r) for r in form.getall("roles", [])]
    person = str(form.get("person", "")) or None
    if person is not None and request.app[ROSTER].person(person) is None:
        raise ValidationFailed([{"field": "person", "message": "not in the roster"}])
    now = request.app[CLOCK].now()
    changed = await lifecycle.set_roles(request.app[DB], username, roles, person, principal.name, now)
    return f"Roles of {username} saved." if changed else f"Roles of {username} unchanged."


async def _reset(request: web.Request, principal: Principal, username: str, form: MultiDictProxy[str]) -> str:
    password, now = str(form.get("password", "")), request.app[CLOCK].now()
    await lifecycle.reset_password(request.app[DB], username, password, principal.name, now)
    return f"One-time password set for {username}: they choose their own at the next login."


async def _revoke(request: web.Request, principal: Principal, name: str, _: MultiDictProxy[str]) -> str:
    await tokens.revoke_token(request.app[DB], name, principal.name, request.app[CLOCK].now())
    return f"Token {name} revoked."


@routes.post("/admin/users/{name}/disable")
async def disable_user(request: web.Request) -> web.Response:
    return await _on_row(request, _disable)


@routes.post("/admin/users/{name}/enable")
async def enable_user(request: web.Request) -> web.Response:
    return await _on_row(request, _enable)


@routes.post("/admin/users/{name}/roles")
async def set_roles(request: web.Request) -> web.Response:
    return await _on_row(request, _roles)


@routes.post("/admin/users/{name}/password")
async def reset_password(request: web.Request) -> web.Response:
    return await _on_row(request, _reset)


@routes.post("/admin/tokens/{name}/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    return await _on_row(request, _revoke, "token")


def _problems(exc: ValidationFailed | Conflict, field: str) -> list[dict[str, str]]:
    return exc.detail if isinstance(exc.detail, list) else [{"field": field, "message": str(exc.detail)}]
