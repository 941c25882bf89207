"""On-call for admins and calendar apps: who is on call, schedules with their timeline, overrides
(audited), and iCal feeds behind secret URLs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from responder.api.auth import require_api
from responder.api.keys import CLOCK, DB, ICAL_SECRET, ROSTER, SETTINGS
from responder.domain import ADMIN, ROSTER_ROLES, SCHEDULE_READERS
from responder.errors import InvalidJSON, NotFound, ValidationFailed
from responder.oncall import feeds, store
from responder.oncall.ical import KINDS, calendar, feed_path, key_matches, schedule_spans
from responder.oncall.schedule import Override, Schedule, Span

routes = web.RouteTableDef()
UPCOMING = timedelta(days=7)
FEED_PAST, FEED_AHEAD = timedelta(days=7), timedelta(days=60)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _at(request: web.Request) -> datetime:
    raw = request.query.get("at")
    if raw is None:
        return request.app[CLOCK].now()
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ValidationFailed(
            [{"field": "at", "message": "an ISO 8601 time with a zone, e.g. 2026-12-24T03:00Z"}]
        )
    return at


@routes.get("/v1/oncall")
async def who(request: web.Request) -> web.Response:
    """Who, in order, for ?role= in ?region= at ?at= (default now), preferring ?language=."""
    await require_api(request, *SCHEDULE_READERS)
    role = request.query.get("role", "")
    if role not in ROSTER_ROLES:
        raise ValidationFailed([{"field": "role", "message": f"one of {', '.join(ROSTER_ROLES)}"}])
    region = request.query.get("region") or None
    at = _at(request)
    roster = request.app[ROSTER]
    found = roster.who(role, region, at, request.query.get("language") or None)
    return web.json_response(
        {
            "role": role,
            "region": region,
            "at": _iso(at),
            "on_call": [
                {
                    "person": o.person,
                    "name": roster.people[o.person].name,
                    "layer": o.layer,
                    "schedule": o.schedule,
                    "region": o.region,
                    "override": o.override,
                }
                for o in found
            ],
        }
    )


@routes.get("/v1/schedules")
async def list_schedules(request: web.Request) -> web.Response:
    await require_api(request, *SCHEDULE_READERS)
    generations = await feeds.generations(request.app[DB], "schedules")
    return web.json_response(
        {"schedules": [_summary(request, s, generations.get(s.id, 0)) for s in request.app[ROSTER].schedules]}
    )


def _summary(request: web.Request, schedule: Schedule, generation: int) -> dict[str, Any]:
    secret = request.app[ICAL_SECRET]
    path = feed_path(secret, "schedules", schedule.id, generation) if secret else None
    return {
        "id": schedule.id,
        "title": schedule.title,
        "role": schedule.role,
        "regions": list(schedule.regions),
        "time_zone": schedule.time_zone,
        "layers": schedule.layer_names(),
        "ical_url": request.app[SETTINGS].env.public_url + path if path else None,  # None: feeds off
    }


def _schedule(request: web.Request) -> Schedule:
    schedule = request.app[ROSTER].schedule(request.match_info["schedule_id"])
    if schedule is None:
        raise NotFound("schedule not found")
    return schedule


def _span(span: Span) -> dict[str, Any]:
    return {
        "layer": span.layer,
        "person": span.person,
        "start": _iso(span.start),
        "end": _iso(span.end),
        "override": span.override,
    }


@routes.get("/v1/schedules/{schedule_id}")
async def get_schedule(request: web.Request) -> web.Response:
    """The schedule, its overrides, the turns of the next 7 days and its timeline (the audit)."""
    await require_api(request, *SCHEDULE_READERS)
    schedule = _schedule(request)
    roster, now = request.app[ROSTER], request.app[CLOCK].now()
    events = await store.timeline(request.app[DB], schedule.id)
    generation = await feeds.generation(request.app[DB], "schedules", schedule.id)
    turns = schedule_spans([schedule], roster.people, now, now + UPCOMING)
    return web.json_response(
        {
            **_summary(request, schedule, generation),
            "overrides": [
                {
                    "id": o.id,
                    "source": "api" if o.id else "file",
                    "layer": o.layer,
                    "person": o.person,
                    "replaces": o.replaces,
                    "start": _iso(o.start),
                    "end": _iso(o.end),
                    "reason": o.reason,
                }
                for o in schedule.overrides
            ],
            "upcoming": [_span(t) for t in turns],
            "timeline": [
                {"at": _iso(e.at), "type": e.type, "actor": e.actor, "detail": e.detail} for e in events
            ],
        }
    )


@routes.post("/v1/schedules/{schedule_id}/overrides")
async def add_override(request: web.Request) -> web.Response:
    """Put a person in a layer for a window: {person, start, end, layer?, replaces?, reason?, by?}."""
    actor = (await require_api(request, ADMIN)).name
    schedule = _schedule(request)
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        raise InvalidJSON("body: not valid JSON") from exc
    if not isinstance(body, dict):
        raise ValidationFailed([{"field": "body", "message": "expected a JSON object"}])
    by = body.pop("by", None)
    if by is not None and (not isinstance(by, str) or not 0 < len(by) <= 60):
        raise ValidationFailed([{"field": "by", "message": "who asked for it: a name of 1 to 60 characters"}])
    try:
        override = Override.model_validate({**body, "id": None})
    except ValidationError as exc:
        raise ValidationFailed(
            [
                {
                    "field": ".".join(str(p) for p in e["loc"]) or "body",
                    "message": e["msg"].removeprefix("Value error, "),
                }
                for e in exc.errors()
            ]
        ) from exc
    problems = override_problems(request, schedule, override)
    if problems:
        raise ValidationFailed(problems)
    actor = f"{actor}:{by}" if by else actor
    row = await store.add_override(request.app[DB], schedule.id, override, actor, request.app[CLOCK].now())
    await refresh_overrides(request.app)
    return web.json_response({"id": row.id, "schedule": schedule.id}, status=201)


def override_problems(request: web.Request, schedule: Schedule, override: Override) -> list[dict[str, str]]:
    problems = []
    if override.layer not in schedule.layer_names():
        problems.append({"field": "layer", "message": f"one of {', '.join(schedule.layer_names())}"})
    person = request.app[ROSTER].person(override.person)
    if person is None:
        problems.append({"field": "person", "message": f"unknown person {override.person!r}"})
    elif schedule.role not in person.roles:
        problems.append(
            {"field": "person", "message": f"{person.id!r} does not have the role {schedule.role}"}
        )
    elif not person.active:
        problems.append({"field": "person", "message": f"{person.id!r} is inactive"})
    if override.replaces is not None and request.app[ROSTER].person(override.replaces) is None:
        problems.append({"field": "replaces", "message": f"unknown person {override.replaces!r}"})
    if override.end - override.start > timedelta(days=366):
        problems.append(
            {"field": "end", "message": "an override lasts at most a year: change the schedule instead"}
        )
    if override.end <= request.app[CLOCK].now():
        problems.append({"field": "end", "message": "the window is already over"})
    return problems


@routes.delete("/v1/schedules/{schedule_id}/overrides/{override_id}")
async def cancel_override(request: web.Request) -> web.Response:
    actor = (await require_api(request, ADMIN)).name
    schedule = _schedule(request)
    await store.cancel_override(
        request.app[DB], schedule.id, request.match_info["override_id"], actor, request.app[CLOCK].now()
    )
    await refresh_overrides(request.app)
    return web.json_response({"cancelled": request.match_info["override_id"]})


async def refresh_overrides(app: web.Application) -> None:
    """Copy the live overrides from the database into the roster (this process, now)."""
    app[ROSTER].set_overrides(await store.load_overrides(app[DB], app[CLOCK].now()))


@routes.get("/ical/{kind}/{ident}.ics")
async def ical_feed(request: web.Request) -> web.Response:
    """Turns from a week ago to 60 days ahead, for calendar apps; the URL's key is the credential.

    Feeds off, an unknown kind, a wrong key and a revoked one all answer the same 404: the answer
    never tells whether a feed exists."""
    kind, ident = request.match_info["kind"], request.match_info["ident"]
    secret = request.app[ICAL_SECRET]
    if not secret or kind not in KINDS:
        raise NotFound("no such feed")
    generation = await feeds.generation(request.app[DB], kind, ident)
    if not key_matches(secret, kind, ident, generation, request.query.get("key", "")):
        raise NotFound("no such feed")
    roster, now = request.app[ROSTER], request.app[CLOCK].now()
    start, end = now - FEED_PAST, now + FEED_AHEAD
    by_id = {s.id: s for s in roster.schedules}
    if kind == "schedules":
        if ident not in by_id:
            raise NotFound("schedule not found")
        turns = schedule_spans([by_id[ident]], roster.people, start, end)
        name = by_id[ident].title or ident
    else:
        if ident not in roster.people:
            raise NotFound("person not found")
        turns = schedule_spans(roster.schedules, roster.people, start, end, person=ident)
        name = f"On call: {roster.people[ident].name}"
    body = calendar(name, turns, by_id, roster.people, now)
    return web.Response(body=body, content_type="text/calendar", charset="utf-8")
