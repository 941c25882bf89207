"""/account/password: any logged-in user changes their own password (the current one first). After an
admin's reset (a one-time password) it is the only page that opens until they do (login_required)."""

from __future__ import annotations

from aiohttp import web

from responder.accounts.lifecycle import PasswordChange, change_password
from responder.accounts.passwords import MIN_LENGTH
from responder.accounts.service import Principal
from responder.api.keys import CLOCK, DB
from responder.errors import ValidationFailed
from responder.web.login import safe_next
from responder.web.views import ACCOUNT_PAGE, COOKIE, checked_form, field_errors, login_required, render

routes = web.RouteTableDef()


@routes.get(ACCOUNT_PAGE)
async def password_page(request: web.Request) -> web.Response:
    principal = await login_required(request)
    next_page = safe_next(request.query.get("next"))
    return _render(principal, next_page)


@routes.post(ACCOUNT_PAGE)
async def change_own_password(request: web.Request) -> web.Response:
    principal = await login_required(request)
    form = await checked_form(request, principal)
    next_page = safe_next(str(form.get("next", "/")))
    change = PasswordChange(
        current=str(form.get("current_password", "")),
        new=str(form.get("new_password", "")),
        new_again=str(form.get("new_password_again", "")),
    )
    username = principal.name.removeprefix("user:")
    try:
        await change_password(
            request.app[DB], username, change, request.cookies.get(COOKIE, ""), request.app[CLOCK].now()
        )
    except ValidationFailed as exc:
        # The form comes back empty: an answer never echoes a password.
        return _render(principal, next_page, 422, field_errors(exc.detail))
    raise web.HTTPSeeOther(next_page)


def _render(
    principal: Principal, next_page: str, status: int = 200, errors: dict[str, str] | None = None
) -> web.Response:
    return render(
        "password.html",
        status,
        principal=principal,
        next=next_page,
        errors=errors or {},
        min_length=MIN_LENGTH,
    )
