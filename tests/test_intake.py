"""POST /v1/alerts as a platform integration sees it: every answer code of PRODUCT.md §2."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from responder.tools import signed_headers
from tests.harness import API_TOKEN, FORUM_SECRET, SOCIAL_SECRET, Service, new_alert_id, sample


async def stored_cases(service: Service) -> list[dict[str, Any]]:
    async with service.http.get(
        f"{service.url}/v1/cases", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as response:
        assert response.status == 200
        cases: list[dict[str, Any]] = (await response.json())["cases"]
        return cases


def body_of(alert: dict[str, Any]) -> str:
    return json.dumps(alert)


@pytest.mark.parametrize(
    ("label", "make_headers"),
    [
        ("unsigned", lambda body: {"content-type": "application/json"}),
        ("mis-signed", lambda body: signed_headers("whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==", body)),
        ("tampered", lambda body: signed_headers(SOCIAL_SECRET, body.replace("imminent", "low"))),
        (
            "stale",
            lambda body: signed_headers(SOCIAL_SECRET, body, at=datetime.now(UTC) - timedelta(minutes=6)),
        ),
        (
            "future",
            lambda body: signed_headers(SOCIAL_SECRET, body, at=datetime.now(UTC) + timedelta(minutes=6)),
        ),
        ("garbled", lambda body: {**signed_headers(SOCIAL_SECRET, body), "webhook-signature": "v1"}),
    ],
)
async def test_bad_signatures_get_401_and_store_nothing(
    service: Service, label: str, make_headers: Any
) -> None:
    body = body_of(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    status, answer = await service.post_alert(body, headers=make_headers(body))
    assert status == 401, label
    assert answer["error"] == "bad_signature" and answer["request_id"]
    assert await stored_cases(service) == []


async def test_not_json_gets_400(service: Service) -> None:
    status, answer = await service.post_alert("{not json")
    assert (status, answer["error"]) == (400, "invalid_json")
    assert await stored_cases(service) == []


async def test_schema_errors_get_422_naming_each_field(service: Service) -> None:
    alert = sample("imminent-live-fr.json", alert_id="x" * 129)
    alert["risk"] = {"level": "extreme", "score": 2}
    alert["location_hints"][0]["region"] = "Paris"
    del alert["detected_at"]
    status, answer = await service.post_alert(alert)
    assert status == 422
    fields = {problem["field"] for problem in answer["detail"]}
    assert fields == {"alert_id", "detected_at", "risk.level", "risk.score", "location_hints[0].region"}
    assert await stored_cases(service) == []


async def test_body_over_64_kib_gets_413(service: Service) -> None:
    alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
    alert["padding"] = "x" * (64 * 1024)
    status, answer = await service.post_alert(alert)
    assert (status, answer["error"]) == (413, "payload_too_large")
    assert await stored_cases(service) == []


async def test_repeat_of_an_alert_is_200_with_the_same_case(service: Service) -> None:
    alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
    first_status, first = await service.post_alert(alert)
    again_status, again = await service.post_alert(alert)
    assert (first_status, again_status) == (202, 200)
    assert again == {"case_id": first["case_id"], "status": "open", "duplicate": True}
    # The same alert_id from another integration is another platform's alert: a new case.
    other_status, other = await service.post_alert(alert, secret=FORUM_SECRET)
    assert other_status == 202 and other["case_id"] != first["case_id"]


async def test_update_adds_to_the_case_and_retract_never_stops_paging(service: Service) -> None:
    alert_id = new_alert_id()
    _, created = await service.post_alert(sample("imminent-live-fr.json", alert_id=alert_id))
    status, updated = await service.post_alert(sample("update-location-fr.json", alert_id=alert_id))
    assert status == 202 and updated["case_id"] == created["case_id"]
    status, retracted = await service.post_alert(sample("retract-us.json", alert_id=alert_id))
    assert status == 202 and retracted["status"] == "open"
    case = await service.case(created["case_id"])
    types = [event["type"] for event in case["timeline"]]
    assert "alert_updated" in types and "retract_requested" in types
    assert case["status"] == "open"
    await service.phone_of("ana").expect_call()  # the chain goes on after the retract


async def test_retract_for_an_unknown_alert_is_404(service: Service) -> None:
    status, answer = await service.post_alert(sample("retract-us.json", alert_id=new_alert_id()))
    assert status == 404 and answer["detail"][0]["field"] == "alert_id"
    assert await stored_cases(service) == []


async def test_medium_risk_report_takes_the_standard_playbook(service: Service) -> None:
    status, answer = await service.post_alert(
        sample("medium-comment-us.json", alert_id=new_alert_id()), secret=FORUM_SECRET
    )
    assert status == 202
    case = await service.case(answer["case_id"])
    assert (case["playbook"], case["region"], case["risk_level"]) == ("standard-risk", "US-CA", "medium")
    await service.phone_of("ines").expect_sms(contains="US-CA")  # Ines reads French: "risque MOYEN"
