"""The case API for staff tools, health endpoints, the OpenAPI document, and what the logs never show."""

from __future__ import annotations

import json
import re
from datetime import datetime

import aiohttp

from responder.simulator import PhoneSimulator
from responder.tools import signed_headers
from tests.harness import API_TOKEN, SOCIAL_SECRET, Service, new_alert_id, sample
from tests.process import ServiceProcess


async def test_case_needs_the_bearer_token(service: Service) -> None:
    _, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}):
        async with service.http.get(f"{service.url}/v1/cases/{body['case_id']}", headers=headers) as response:
            assert response.status == 401
            assert (await response.json())["error"] == "unauthorized"


async def test_unknown_status_filter_is_422(service: Service) -> None:
    async with service.http.get(
        f"{service.url}/v1/cases?status=bogus", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as response:
        assert response.status == 422 and (await response.json())["detail"][0]["field"] == "status"


async def test_unknown_case_is_404(service: Service) -> None:
    async with service.http.get(
        f"{service.url}/v1/cases/nope", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as response:
        assert response.status == 404


async def test_resolve_with_an_outcome_stops_paging(service: Service) -> None:
    _, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    case_id = body["case_id"]
    await service.phone_of("ana").expect_sms(contains="ACK")
    status, answer = await service.resolve(case_id, {"outcome": "saved_by_magic"})
    assert status == 422 and answer["detail"][0]["field"] == "outcome"
    status, answer = await service.resolve(case_id, {"outcome": "unable_to_locate"})
    assert status == 422 and answer["detail"][0]["field"] == "note"
    status, answer = await service.resolve(case_id, {"outcome": "false_positive", "note": "a song lyric"})
    assert status == 200 and (answer["status"], answer["outcome"]) == ("resolved", "false_positive")
    # A delivery receipt for the pages already sent may land after the resolve; the resolve is there.
    assert [e["type"] for e in answer["timeline"]].count("case_resolved") == 1
    status, answer = await service.resolve(case_id, {"outcome": "deescalated"})
    assert status == 409
    assert (await service.case(case_id))["next_due_at"] is None  # nothing left for the engine to do
    # A second case's voice step (+1m) falls due after the first case's would have: once it rings, the
    # engine has acted past that time, and made no page for the resolved case.
    _, second = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    await call_for(service, "ana", second["case_id"])
    first = await service.case(case_id)
    resolved_at = datetime.fromisoformat(first["resolved_at"])
    # (On a slow machine the voice step may have come before the resolve; never after it.)
    assert all(datetime.fromisoformat(p["created_at"]) < resolved_at for p in first["pages"])
    async with service.http.post(
        f"{service.url}/v1/cases/{case_id}/resolve",
        data="{",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as response:
        assert response.status == 400


async def call_for(service: Service, person: str, case_id: str) -> None:
    """Wait until the person's phone rings for a page of this case."""
    phone = service.phone_of(person)
    while True:
        call = await phone.expect_call()
        voice = [p["id"] for p in (await service.case(case_id))["pages"] if p["channel"] == "voice"]
        if any((call.setup.status_callback or "").endswith(f"/{page}") for page in voice):
            return


async def test_timeline_has_utc_times_and_actors(service: Service) -> None:
    _, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    await service.phone_of("ana").expect_sms(contains="ACK")
    await service.phone_of("ana").send_sms("ACK")
    case = await service.case(body["case_id"])
    for event in case["timeline"]:
        assert event["at"].endswith("Z") and event["actor"]
    actors = {e["type"]: e["actor"] for e in case["timeline"]}
    assert actors["alert_received"] == "platform:social-example"
    assert actors["case_accepted"] == "person:ana"


async def test_health_readiness_and_openapi(service: Service) -> None:
    for path in ("/healthz", "/readyz"):
        async with service.http.get(service.url + path) as response:
            assert response.status == 200
    async with service.http.get(f"{service.url}/v1/openapi.json") as response:
        document = await response.json()
    assert document["openapi"].startswith("3.")
    assert {"/v1/alerts", "/v1/cases/{case_id}", "/v1/cases/{case_id}/resolve"} <= set(document["paths"])
    assert "risk" in document["components"]["schemas"]["Alert"]["properties"]


async def test_logs_are_json_with_ids_and_never_show_phones_names_or_bodies(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    process = ServiceProcess(db_url, sim)
    await process.run("db", "upgrade")
    await process.start()
    try:
        alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
        data = json.dumps(alert)
        async with http.post(
            f"{process.url}/v1/alerts", data=data, headers=signed_headers(SOCIAL_SECRET, data)
        ):
            pass
        ana = sim.phone("+33639980002")
        await ana.expect_sms(contains="ACK")
        await ana.send_sms("ACK")
    finally:
        await process.stop()
    lines = [json.loads(line) for line in process.log_lines if line.startswith("{")]
    assert any(
        entry.get("event") == "alert_received" and entry.get("case_id") and entry.get("request_id")
        for entry in lines
    )
    text = "\n".join(process.log_lines)
    assert not re.search(r"\+\d{8,}", text), "a phone number in clear"
    for secret in ("Camille", "Ana Negotiator", "je n'en peux plus", "Reply ACK", "Répondez", "100093377120"):
        assert secret not in text


async def test_metrics_count_alerts_pages_accepts_and_open_cases(service: Service) -> None:
    status, _ = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
    await service.phone_of("ana").send_sms("ACK")
    await service.phone_of("ines").expect_sms(contains="pris par")
    async with service.http.get(f"{service.url}/metrics") as response:
        assert response.status == 200 and response.content_type == "text/plain"
        text = await response.text()
    for line in (
        'responder_alerts_total{event="new",result="taken"}',
        'responder_pages_sent_total{channel="sms",purpose="page"}',
        'responder_cases_accepted_total{via="sms"}',
        'responder_http_requests_total{route="/v1/alerts",status="202"}',
        "responder_step_lateness_seconds_count",
    ):
        assert line in text, line
    assert "responder_open_cases 0.0" in text
