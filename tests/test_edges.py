"""Intake at its edges: a signed alert is never refused for how its body arrived, hostile input never
reaches the database (422 naming the field, nothing stored, never a 5xx), unknown fields are not kept."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import col

from responder.simulator import Behaviour
from responder.store.db import Database
from responder.store.models import Case, CaseEvent
from responder.tools import signed_headers
from tests.harness import API_TOKEN, SOCIAL_SECRET, Service, new_alert_id, sample


async def case_count(service: Service) -> int:
    async with service.http.get(
        f"{service.url}/v1/cases", headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as response:
        assert response.status == 200
        return len((await response.json())["cases"])


async def raw_post(service: Service, head: bytes, parts: list[bytes]) -> tuple[int, bytes]:
    """POST over a bare socket, the body written in `parts` (each its own TCP write)."""
    host, port = service.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        for part in parts:
            writer.write(part)
            await writer.drain()
            # Not waiting for anything: a pause that makes the service see the body in pieces.
            await asyncio.sleep(0.02)
        answer = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def request_head(body: bytes, *, chunked: bool) -> bytes:
    headers = signed_headers(SOCIAL_SECRET, body.decode())
    lines = ["POST /v1/alerts HTTP/1.1", "Host: responder", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunks(body: bytes, size: int) -> list[bytes]:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces] + [b"0\r\n\r\n"]


async def test_a_signed_alert_sent_in_two_writes_is_taken(service: Service) -> None:
    body = json.dumps(sample("imminent-live-fr.json", alert_id=new_alert_id())).encode()
    half = len(body) // 2
    status, answer = await raw_post(service, request_head(body, chunked=False), [body[:half], body[half:]])
    assert status == 202, answer
    assert json.loads(answer)["duplicate"] is False


async def test_a_chunked_signed_alert_is_taken(service: Service) -> None:
    body = json.dumps(sample("imminent-live-fr.json", alert_id=new_alert_id())).encode()
    status, answer = await raw_post(service, request_head(body, chunked=True), chunks(body, 200))
    assert status == 202, answer


async def test_a_chunked_body_over_64_kib_gets_413(service: Service) -> None:
    alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
    alert["padding"] = "x" * (70 * 1024)
    body = json.dumps(alert).encode()
    status, answer = await raw_post(service, request_head(body, chunked=True), chunks(body, 8 * 1024))
    assert status == 413, answer
    assert json.loads(answer)["error"] == "payload_too_large"
    assert await case_count(service) == 0


def hostile(alert: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """The alert with the field at dotted `path` (e.g. "location_hints.0.confidence") set to `value`."""
    target: Any = alert
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return alert


# Each passed validation once and then broke the database, the case page, or the answer.
HOSTILE = [
    ("risk.score", math.nan, "risk.score"),
    ("location_hints.0.confidence", math.inf, "location_hints[0].confidence"),
    ("risk.score", -math.inf, "risk.score"),
    ("subject.display_name", "Ana\x00Marie", "subject.display_name"),
    ("alert_id", "a\x00b", "alert_id"),
    ("content.language", "fr-" + "-".join(["abcdefgh"] * 5), "content.language"),
    ("subject.languages", ["fr", "x" * 40], "subject.languages[1]"),
    ("detected_at", "0001-01-01T00:00:00+01:00", "detected_at"),
    ("detected_at", "9999-12-31T23:59:59-14:00", "detected_at"),
    ("content.created_at", "1900-01-01T00:00:00Z", "content.created_at"),
    ("location_hints.0.confidence", "0.6", "location_hints[0].confidence"),
    ("risk.score", "0.9", "risk.score"),
    ("content.is_live", "yes", "content.is_live"),
    ("alert_id", 12345, "alert_id"),
    ("subject.account_id", {"nested": True}, "subject.account_id"),
    # "$" matches before a final newline: "FR-75\n" once passed and routed the case past Paris.
    ("location_hints.0.region", "FR-75\n", "location_hints[0].region"),
    ("location_hints.0.country", "FR\n", "location_hints[0].country"),
    ("content.language", "fr\n", "content.language"),
]


@pytest.mark.parametrize(("path", "value", "field"), HOSTILE)
async def test_input_that_would_break_the_database_gets_422_naming_the_field(
    service: Service, path: str, value: Any, field: str
) -> None:
    alert = hostile(sample("imminent-live-fr.json", alert_id=new_alert_id()), path, value)
    status, answer = await service.post_alert(json.dumps(alert))  # json.dumps writes NaN, Infinity
    assert status == 422, answer
    assert field in {problem["field"] for problem in answer["detail"]}
    assert await case_count(service) == 0


async def test_nesting_beyond_the_bound_gets_422(service: Service) -> None:
    body = json.dumps(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    deep = body[:-1] + ', "deep": ' + "[" * 5000 + "]" * 5000 + "}"
    status, answer = await service.post_alert(deep)
    assert status == 422 and answer["detail"][0]["field"] == "(body)"
    assert await case_count(service) == 0


async def test_a_webhook_id_over_128_characters_gets_422(service: Service) -> None:
    body = json.dumps(sample("imminent-live-fr.json", alert_id=new_alert_id(), event="update"))
    status, answer = await service.post_alert(body, headers=signed_headers(SOCIAL_SECRET, body, "m" * 129))
    assert status == 422 and answer["detail"][0]["field"] == "webhook-id"
    assert await case_count(service) == 0


async def stored_text(service: Service) -> str:
    """Every stored alert and timeline detail, as the service reads them back (opened: the alert is
    sealed at rest, tests/test_privacy_at_rest.py)."""
    db = Database(service.settings.env.database_url)
    try:
        async with db.engine.connect() as conn:
            alerts = (await conn.execute(select(col(Case.alert)))).scalars().all()
            details = (await conn.execute(select(col(CaseEvent.detail)))).scalars().all()
    finally:
        await db.close()
    return json.dumps([*alerts, *details], default=str)


async def test_nan_in_an_unknown_field_is_ignored_and_not_stored(service: Service) -> None:
    alert = sample("imminent-live-fr.json", alert_id=new_alert_id(), platform_score=math.nan)
    alert["risk"]["calibration"] = math.inf
    status, _ = await service.post_alert(json.dumps(alert))
    assert status == 202
    assert "NaN" not in await stored_text(service) and "Infinity" not in await stored_text(service)


async def test_unknown_fields_are_not_stored(service: Service) -> None:
    alert_id = new_alert_id()
    alert = sample("imminent-live-fr.json", alert_id=alert_id, internal_notes="MARKER-TOP")
    alert["subject"]["government_id"] = "MARKER-SUBJECT"
    alert["location_hints"][0]["street"] = "MARKER-HINT"
    status, _created = await service.post_alert(alert)
    assert status == 202
    update = sample("update-location-fr.json", alert_id=alert_id, tracking="MARKER-UPDATE")
    assert (await service.post_alert(update))[0] == 202
    stored = await stored_text(service)
    assert "203.0.113.57" in stored  # the known fields are kept (a hint's value)...
    assert "MARKER" not in stored  # ...the unknown ones are not


# A valid alert with hostile values dropped anywhere: the service must answer, never crash. Half the
# values are the known troublemakers, half anything JSON can say.
_SPECIAL = st.sampled_from(
    [
        math.nan,
        math.inf,
        -math.inf,
        "\x00",
        "Ana\x00",
        "0.6",
        "true",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+01:00",
        "fr-" + "-".join(["abcdefgh"] * 5),
        "x" * 3000,
        10**30,
        [[[[[[[[[[1]]]]]]]]]],
    ]
)
_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("\x00\ud7ff\ufffd\u202eé1-:Z+"), max_size=20),
    st.sampled_from(["0.6", "1e400", "9999-12-31T23:59:59-14:00", "0000-01-01T00:00:00Z", "x" * 3000]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
_VALUES = st.one_of(_SPECIAL, _ANY)
_PATHS = st.sampled_from(
    [
        "alert_id",
        "detected_at",
        "event",
        "risk",
        "risk.level",
        "risk.score",
        "risk.method",
        "content",
        "content.type",
        "content.url",
        "content.excerpt",
        "content.language",
        "content.created_at",
        "content.is_live",
        "subject",
        "subject.display_name",
        "subject.languages",
        "location_hints",
        "location_hints.0",
        "location_hints.0.kind",
        "location_hints.0.value",
        "location_hints.0.region",
        "location_hints.0.country",
        "location_hints.0.confidence",
        "platform_contact",
        "platform_contact.phone",
        "platform_contact.reference",
        "location_hints.0.source",
        "subject.account_id",
        "unknown_field",
        "risk.unknown_field",
    ]
)


@pytest.fixture
def hypothesis_service(service: Service) -> Service:
    return service


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=True,  # the same bodies every run: a generated test that cannot flake
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=st.lists(st.tuples(_PATHS, _VALUES), min_size=1, max_size=3))
async def test_hostile_bodies_never_get_a_5xx(
    hypothesis_service: Service, changes: list[tuple[str, Any]]
) -> None:
    service = hypothesis_service
    alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
    for path, value in changes:
        try:
            alert = hostile(alert, path, value)
        except (AttributeError, TypeError, KeyError, IndexError, ValueError):
            continue  # the path runs through a value made hostile by an earlier change
    body = json.dumps(alert)
    status, answer = await post_any(service, body)
    assert status < 500, (status, answer)
    if status in (200, 202):
        # What was taken in can be shown: the case API answers for it.
        case = await service.case(answer["case_id"])
        assert case["id"] == answer["case_id"]
    else:
        assert status in (400, 404, 413, 422), (status, answer)


async def post_any(service: Service, body: str) -> tuple[int, Any]:
    async with service.http.post(
        f"{service.url}/v1/alerts", data=body, headers=signed_headers(SOCIAL_SECRET, body)
    ) as response:
        try:
            return response.status, await response.json()
        except aiohttp.ContentTypeError:
            return response.status, await response.text()


async def test_a_client_that_leaves_mid_body_is_not_a_crash(service: Service) -> None:
    body = json.dumps(sample("imminent-live-fr.json", alert_id=new_alert_id())).encode()
    host, port = service.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(request_head(body, chunked=False) + body[:100])
    await writer.drain()
    writer.close()  # gone before the rest of the body
    await writer.wait_closed()
    async with service.http.get(f"{service.url}/metrics") as answer:
        text = await answer.text()
    crashes = [line for line in text.splitlines() if 'route="/v1/alerts",status="500"' in line]
    assert crashes == [] or all(line.endswith(" 0.0") for line in crashes)
    assert await case_count(service) == 0


async def test_a_request_id_that_is_not_one_is_replaced(service: Service) -> None:
    async with service.http.get(
        f"{service.url}/v1/cases/nope",
        headers={"X-Request-Id": "Camille D. 06 11 22 33 44", "Authorization": f"Bearer {API_TOKEN}"},
    ) as answer:
        assert answer.status == 404
        assert "Camille" not in answer.headers["X-Request-Id"]
        assert "Camille" not in (await answer.json())["request_id"]
    async with service.http.get(f"{service.url}/healthz", headers={"X-Request-Id": "lb-1234abcd"}) as answer:
        assert answer.headers["X-Request-Id"] == "lb-1234abcd"  # a real one is kept, for tracing


async def test_a_number_twilio_quotes_in_its_refusal_is_not_passed_on(service: Service) -> None:
    ana = service.phone_of("ana")
    ana.behaviour = Behaviour(sms_reject_code=21211)  # "The 'To' number +33... is not a valid ..."
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("maya").expect_sms(contains="invalid phone number")  # the refusal was acted on
    case = await service.case(body["case_id"])
    reasons = [e["detail"].get("reason", "") for e in case["timeline"] if e["type"] == "page_failed"]
    assert reasons and all("+336" in r and ana.number not in r for r in reasons), reasons
    assert ana.number not in json.dumps(case)
