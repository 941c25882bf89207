"""Random and malformed Twilio callbacks, signed and unsigned: never a 5xx, and unsigned ones change
nothing. Also: a callback signed with the secondary auth token (a rotation) is accepted.

The requests come from a seeded generator, so every run posts the same ones (a fuzz test that cannot
flake); change SEED to explore further."""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator
from functools import partial
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from responder.simulator import PhoneSimulator, SimMessage
from tests.harness import AUTH_TOKEN, WAIT_S, Service, new_alert_id, sample, start_service, stop_service

SEED = 20261128
SECONDARY = "secondary-token-for-rotation-0001"
PATHS = ("/twilio/status/{page}", "/twilio/voice/{page}", "/twilio/voice/{page}/key", "/twilio/sms")
FIELDS = (
    "MessageStatus",
    "CallStatus",
    "SmsStatus",
    "SequenceNumber",
    "ErrorCode",
    "AnsweredBy",
    "Digits",
    "Body",
    "From",
    "To",
    "MessageSid",
    "CallSid",
    "AccountSid",
    "CallDuration",
    "Junk",
)
VALUES = (
    "",
    "delivered",
    "undelivered",
    "failed",
    "busy",
    "no-answer",
    "canceled",
    "in-progress",
    "completed",
    "machine_start",
    "fax",
    "human",
    "1",
    "2",
    "*",
    "#",
    "-1",
    "0",
    "9" * 40,
    "ACK",
    "NO",
    "STOP",
    "START",
    "HELP",
    "ACK ZZZZZ",
    "+33639980002",
    "+1",
    "not-a-number",
    "é\u0000\U0001f600",
    "x" * 5000,
    "%00",
    "30003",
    "21610",
    "abc",
    "1e9",
    "null",
    "[]",
)


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    # Real time: the chain's next step (a minute away) stays out of the snapshots.
    running = await start_service(
        db_url, sim, http, TWILIO_SECONDARY_AUTH_TOKEN=SECONDARY, RESPONDER_TIME_SCALE="1"
    )
    yield running
    await stop_service(running)


def requests(rng: random.Random, pages: list[str], count: int) -> list[tuple[str, dict[str, str], str]]:
    """(path with query, form, how to sign it) triples."""
    found = []
    for _ in range(count):
        page = rng.choice([*pages, "", "nope", "../../etc", "x" * 300, "%2F", rng.choice(pages) + "'"])
        path = rng.choice(PATHS).format(page=page)
        if rng.random() < 0.3:
            path += "?play=" + rng.choice(["1", "2", "3", "done", "-5", "abc", "9" * 30, ""])
        form = {rng.choice(FIELDS): rng.choice(VALUES) for _ in range(rng.randint(0, 6))}
        if rng.random() < 0.2:
            key = "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 12)))
            form[key] = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 40)))
        found.append((path, form, rng.choice(["none", "garbage", "wrong-token"])))
    return found


async def post(service: Service, path: str, form: dict[str, str], signature: str | None) -> int:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    body = urlencode(form).encode()
    async with service.http.post(f"{service.url}{path}", data=body, headers=headers) as answer:
        await answer.read()
        return answer.status


def signed(service: Service, path: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    # The service checks the signature against its public URL, which is where the test reaches it.
    signature: str = RequestValidator(token).compute_signature(f"{service.url}{path}", form)
    return signature


def message_of(sim: PhoneSimulator, page_id: str) -> SimMessage | None:
    """The SMS the simulator carries for a page (its status callback names the page)."""
    url = f"/twilio/status/{page_id}"
    return next((m for m in sim.messages.values() if (m.status_callback or "").endswith(url)), None)


async def snapshot(service: Service, case_id: str) -> dict[str, Any]:
    """The case once its first SMS are delivered and Twilio has nothing more to say: the service has
    answered the `delivered` callback of every one."""
    pages = (await service.case(case_id))["pages"]
    assert pages
    for page in pages:
        message = await service.sim.changes.wait_for(partial(message_of, service.sim, page["id"]), WAIT_S)
        assert message is not None, page
        await service.sim.phone(message.to).expect_reported(message, "delivered")
    case = await service.case(case_id)
    assert len([e for e in case["timeline"] if e["type"] == "page_delivered"]) == len(case["pages"])
    return case


async def test_unsigned_and_missigned_callbacks_get_403_and_change_nothing(service: Service) -> None:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
    case_id = body["case_id"]
    before = await snapshot(service, case_id)
    pages = [p["id"] for p in before["pages"]]
    rng = random.Random(SEED)
    for path, form, how in requests(rng, pages, 150):
        signature = {
            "none": None,
            "garbage": "".join(rng.choice(string.ascii_letters) for _ in range(28)),
            "wrong-token": signed(service, path, form, "not-the-token"),
        }[how]
        answer = await post(service, path, form, signature)
        assert answer in (403, 404, 405), (path, form, answer)
    after = await snapshot(service, case_id)
    assert after["timeline"] == before["timeline"] and after["status"] == before["status"]
    assert [(p["id"], p["status"]) for p in after["pages"]] == [
        (p["id"], p["status"]) for p in before["pages"]
    ]


async def test_signed_random_callbacks_never_get_a_5xx(service: Service) -> None:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
    pages = [p["id"] for p in (await snapshot(service, body["case_id"]))["pages"]]
    rng = random.Random(SEED + 1)
    for path, form, _ in requests(rng, pages, 200):
        answer = await post(service, path, form, signed(service, path, form))
        assert answer < 500, (path, form, answer)
    assert (await service.case(body["case_id"]))["id"] == body["case_id"]  # still serving


async def test_a_callback_signed_with_the_secondary_token_is_accepted(service: Service) -> None:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    await service.phone_of("ana").expect_sms(contains="ACK")
    ana_page = next(p for p in (await service.case(body["case_id"]))["pages"] if p["person"]["id"] == "ana")
    path = f"/twilio/status/{ana_page['id']}"
    form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "read", "SequenceNumber": "99"}
    assert await post(service, path, form, signed(service, path, form, SECONDARY)) == 204
    sms_form = {
        "From": service.phone_of("ana").number,
        "To": "+15005550006",
        "Body": "ACK",
        "MessageSid": "SM" + "b" * 32,
    }
    assert (
        await post(service, "/twilio/sms", sms_form, signed(service, "/twilio/sms", sms_form, SECONDARY))
        == 200
    )
    case = await service.case(body["case_id"])
    assert case["status"] == "acknowledged" and case["accepted_by"]["id"] == "ana"


async def test_a_callback_signed_on_the_url_without_its_port_is_taken(service: Service) -> None:
    """Twilio may sign the URL with or without its port (behind a proxy, say): both are taken, and
    only those two."""
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    page = (await snapshot(service, body["case_id"]))["pages"][0]
    path = f"/twilio/status/{page['id']}"
    form = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "delivered"}
    host, port = service.url.removeprefix("http://").split(":")
    portless = RequestValidator(AUTH_TOKEN).compute_signature(f"http://{host}{path}", form)
    other_port = RequestValidator(AUTH_TOKEN).compute_signature(f"http://{host}:{int(port) + 1}{path}", form)
    assert await post(service, path, form, portless) == 204
    assert await post(service, path, form, signed(service, path, form)) == 204
    assert await post(service, path, form, other_port) == 403
