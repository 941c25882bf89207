"""Calendar feeds behind secret URLs keyed with RESPONDER_ICAL_SECRET: one feed revoked from the command
line (audited) answers 404 while every other feed still works; without the secret the feeds are off."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from sqlalchemy import text

from responder.oncall.ical import feed_key
from responder.simulator import PhoneSimulator
from responder.store.db import Database
from tests.harness import API_TOKEN, LINK_SECRET, Service, responder_command, start_service, stop_service

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def responder(service: Service, db_url: str, *args: str, **env: str) -> tuple[int, str, str]:
    return await responder_command(db_url, service.url, service.sim.url, *args, **env)


async def api(service: Service, path: str) -> Any:
    async with service.http.get(service.url + path, headers=AUTH) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def status_of(service: Service, url: str) -> int:
    async with service.http.get(url) as answer:
        if answer.status == 200:
            assert answer.content_type == "text/calendar"
            assert b"BEGIN:VCALENDAR" in await answer.read()
        return answer.status


async def test_a_revoked_feed_answers_404_and_the_others_still_work(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(db_url, sim, http)
    try:
        listed = await api(service, "/v1/schedules")
        urls = {s["id"]: s["ical_url"] for s in listed["schedules"]}
        paris, managers = urls["negotiators-paris"], urls["managers"]
        # The key is made from the iCal secret alone: another link secret gives the same URL.
        code, out, err = await responder(
            service, db_url, "ical", "url", "person", "ana", RESPONDER_LINK_SECRET="x" * 40
        )
        assert code == 0, err
        ana = out.strip()
        assert [await status_of(service, url) for url in (paris, managers, ana)] == [200, 200, 200]

        code, out, err = await responder(service, db_url, "ical", "revoke", "schedule", "negotiators-paris")
        assert code == 0, err
        new_paris = out.strip().splitlines()[-1]
        assert new_paris != paris
        assert await status_of(service, paris) == 404  # the leaked URL is dead...
        assert [await status_of(service, url) for url in (managers, ana, new_paris)] == [200, 200, 200]
        assert (await api(service, "/v1/schedules/negotiators-paris"))["ical_url"] == new_paris

        code, _, err = await responder(service, db_url, "ical", "revoke", "schedule", "nope")
        assert code == 2 and "ID: there is no schedule 'nope'" in err
    finally:
        await stop_service(service)
    db = Database(db_url)
    try:
        async with db.sessions() as session:
            rows = (
                await session.execute(
                    text("SELECT actor, detail FROM audit_event WHERE action = 'ical_feed_revoked'")
                )
            ).all()
    finally:
        await db.close()
    assert [(actor, _json(detail)) for actor, detail in rows] == [
        ("cli", {"kind": "schedules", "ident": "negotiators-paris", "generation": 1})
    ]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def test_without_the_ical_secret_the_feeds_are_off(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(db_url, sim, http, RESPONDER_ICAL_SECRET="")
    try:
        listed = await api(service, "/v1/schedules")
        assert {s["ical_url"] for s in listed["schedules"]} == {None}
        # Not even a key made with the link secret (what keyed the feeds before) opens one.
        for key in (feed_key(LINK_SECRET, "schedules", "managers", 0), ""):
            assert await status_of(service, f"{service.url}/ical/schedules/managers.ics?key={key}") == 404
        code, _, err = await responder(
            service, db_url, "ical", "url", "schedule", "managers", RESPONDER_ICAL_SECRET=""
        )
        assert code == 2 and "environment RESPONDER_ICAL_SECRET: not set" in err
    finally:
        await stop_service(service)
