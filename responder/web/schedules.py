"""/admin/schedules for admins: who is on call this week, and an override added from a form (the API's
override: the same checks, the same audit on the schedule's timeline)."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web
from pydantic import ValidationError

from responder.accounts.service import Principal
from responder.api.keys import CLOCK, DB, ROSTER
from responder.api.schedules import override_problems, refresh_overrides
from responder.domain import ADMIN
from responder.oncall import store
from responder.oncall.schedule import Override, spans
from responder.web.views import checked_form, field_errors, login_required, render, sentence, utc_input

routes = web.RouteTableDef()


@routes.get("/admin/schedules")
async def schedules_page(request: web.Request) -> web.Response:
    principal = await login_required(request, ADMIN)
    return _render_schedules(request, principal)


def _render_schedules(
    request: web.Request,
    principal: Principal,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    message: str = "",
) -> web.Response:
    roster, now = request.app[ROSTER], request.app[CLOCK].now()
    turns = {s.id: spans(s, now, now + timedelta(days=7), roster.people) for s in roster.schedules}
    return render(
        "schedules.html",
        status,
        principal=principal,
        schedules=roster.schedules,
        turns=turns,
        people=roster.people,
        errors=errors or {},
        form=form or {},
        message=message,
    )


@routes.post("/admin/schedules/overrides")
async def add_schedule_override(request: web.Request) -> web.Response:
    """The API's override, from a form: the same checks, the same audit on the schedule's timeline."""
    principal = await login_required(request, ADMIN)
    form = await checked_form(request, principal)
    values = {
        k: str(form.get(k, "")).strip() for k in ("schedule", "layer", "person", "start", "end", "reason")
    }
    schedule = request.app[ROSTER].schedule(values["schedule"])
    errors: dict[str, str] = {}
    times: dict[str, datetime] = {}
    for key in ("start", "end"):
        try:
            times[key] = utc_input(values[key])
        except ValueError:
            errors[key] = "Use the date and time picker (UTC)."
    if schedule is None:
        errors["schedule"] = "Unknown schedule."
    if not errors and schedule is not None:
        try:
            override = Override(
                layer=values["layer"] or "primary",
                person=values["person"],
                start=times["start"],
                end=times["end"],
                reason=values["reason"],
            )
        except ValidationError as exc:
            errors = {
                "end" if not e["loc"] else str(e["loc"][0]): sentence(
                    str(e["msg"]).removeprefix("Value error, ")
                )
                for e in exc.errors()
            }
        else:
            problems = override_problems(request, schedule, override)
            errors = field_errors(problems)
            if not errors:
                await store.add_override(
                    request.app[DB], schedule.id, override, principal.name, request.app[CLOCK].now()
                )
                await refresh_overrides(request.app)
                return _render_schedules(request, principal, message=f"Override added to {schedule.id}.")
    return _render_schedules(request, principal, 422, errors, values)
