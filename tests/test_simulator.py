"""The phone simulator, driven through the real twilio SDK and checked by a real webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from responder.simulator import Behaviour, BehaviourError, PhoneSimulator
from responder.simulator.behaviour import ApiError
from responder.simulator.signing import compute_signature
from responder.simulator.state import WAIT_S, Changes
from responder.simulator.twiml import Gather, Say, parse_messages, parse_voice

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "simulator-test-token"
SERVICE_NUMBER = "+15005550006"

# twilio 9.13's async client still passes aiohttp.BasicAuth as `auth=`, both deprecated in aiohttp 3.14:
# not ours to fix, so ignore exactly those two warnings, and only where the SDK triggers them.
pytestmark = [
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning:twilio.http"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning:twilio.base"),
]
ALICE = "+33612345678"

VOICE_TWIML = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say>Crisis alert for case K7Q2.</Say>
  <Gather action="voice/gather?case=K7Q2" numDigits="1" timeout="5">
    <Say>Press 1 to accept, 2 to decline.</Say>
  </Gather>
  <Say>No key pressed. Goodbye.</Say>
</Response>"""


# --- the service side: a real HTTP server that records and checks every webhook -------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    params: dict[str, str]
    signature_ok: bool


class Receiver:
    """Stands in for the service: answers TwiML by path and validates each signature with twilio's SDK."""

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[Received] = []
        self.changes = Changes()
        self.validator = RequestValidator(AUTH_TOKEN)
        self.replies: dict[str, Callable[[dict[str, str]], str]] = {
            "/voice": lambda _: VOICE_TWIML,
            "/voice/gather": lambda p: f"<Response><Say>You pressed {p['Digits']}.</Say><Hangup/></Response>",
            "/twilio/sms": lambda p: f"<Response><Message>Acknowledged {p['Body'][4:]}</Message></Response>",
        }

    def url(self, path: str) -> str:
        return self.base_url + path

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post() if request.method == "POST" else {}
        params = {name: str(value) for name, value in form.items()}
        if request.method == "GET":
            params_for_signature: dict[str, str] = {}
            params = dict(request.query)
        else:
            params_for_signature = params
        signature = request.headers.get("X-Twilio-Signature", "")
        ok = self.validator.validate(str(request.url), params_for_signature, signature)
        self.requests.append(Received(request.method, request.path, params, ok))
        self.changes.notify()
        if request.path == "/broken":
            return web.Response(status=500, text="boom")
        reply = self.replies.get(request.path)
        if reply is None:
            return web.Response(status=204)
        return web.Response(text=reply(params), content_type="text/xml")

    async def expect(self, path: str, count: int = 1, timeout_s: float = WAIT_S) -> list[Received]:
        """Wait until ``count`` requests reached ``path``; return them, oldest first."""

        def found() -> list[Received] | None:
            hits = [r for r in self.requests if r.path == path]
            return hits if len(hits) >= count else None

        hits = await self.changes.wait_for(found, timeout_s)
        assert hits is not None, f"expected {count} request(s) to {path}, got {self.requests}"
        assert all(hit.signature_ok for hit in hits), hits
        return hits


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receiver.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield receiver
    await runner.cleanup()


@pytest.fixture
async def sim(receiver: Receiver) -> AsyncIterator[PhoneSimulator]:
    sim = PhoneSimulator(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        sms_webhook_url=receiver.url("/twilio/sms"),
        service_numbers=[SERVICE_NUMBER],
        callback_delay_s=0.005,
        time_scale=0.02,  # a 5 s <Gather timeout> lasts 0.1 s
    )
    await sim.start(host="127.0.0.1", port=0)
    yield sim
    await sim.stop()


def make_client(sim: PhoneSimulator, http: AsyncTwilioHttpClient, token: str = AUTH_TOKEN) -> Client:
    client = Client(ACCOUNT_SID, token, http_client=http)
    client.api.base_url = sim.url
    return client


@pytest.fixture
async def client(sim: PhoneSimulator) -> AsyncIterator[Client]:
    http = AsyncTwilioHttpClient()
    yield make_client(sim, http)
    await http.close()


# --- SMS -------------------------------------------------------------------------------------------


async def test_sms_is_delivered_with_signed_status_callbacks(
    sim: PhoneSimulator, client: Client, receiver: Receiver
) -> None:
    created = await client.messages.create_async(
        to=ALICE,
        from_=SERVICE_NUMBER,
        body="ALERT K7Q2: reply ACK K7Q2",
        status_callback=receiver.url("/sms"),
    )
    assert created.status == "queued"
    assert created.sid.startswith("SM") and len(created.sid) == 34
    assert created.direction == "outbound-api" and created.error_code is None

    received = await sim.phone(ALICE).expect_sms(contains="ack k7q2")

    assert (received.sid, received.from_, received.status) == (created.sid, SERVICE_NUMBER, "delivered")
    assert received.received_at is not None
    callbacks = await receiver.expect("/sms", count=2)
    assert [c.params["MessageStatus"] for c in callbacks] == ["sent", "delivered"]
    assert callbacks[-1].params == {
        "MessageSid": created.sid,
        "SmsSid": created.sid,
        "AccountSid": ACCOUNT_SID,
        "From": SERVICE_NUMBER,
        "To": ALICE,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "ApiVersion": "2010-04-01",
    }
    fetched = await client.messages(created.sid).fetch_async()
    assert (fetched.status, fetched.body) == ("delivered", "ALERT K7Q2: reply ACK K7Q2")
    await sim.phone(ALICE).expect_reported(received, "delivered")  # the receiver answered it (204)
    assert received.reported == ["sent", "delivered"]


async def test_a_message_without_a_status_callback_reports_nothing(
    sim: PhoneSimulator, client: Client
) -> None:
    await client.messages.create_async(to=ALICE, from_=SERVICE_NUMBER, body="hand-off")
    message = await sim.phone(ALICE).expect_sms(contains="hand-off")
    with pytest.raises(AssertionError, match="no answered 'delivered' callback"):
        await sim.phone(ALICE).expect_reported(message, "delivered", timeout_s=0.05)
    assert message.reported == []


async def test_undelivered_sms_reports_its_error_code(
    sim: PhoneSimulator, client: Client, receiver: Receiver
) -> None:
    phone = sim.phone(ALICE)
    phone.behaviour = Behaviour(sms="undelivered", sms_error_code=30005)

    created = await client.messages.create_async(
        to=ALICE, from_=SERVICE_NUMBER, body="ALERT", status_callback=receiver.url("/sms")
    )

    final = (await receiver.expect("/sms", count=2))[-1]
    assert (final.params["MessageStatus"], final.params["ErrorCode"]) == ("undelivered", "30005")
    assert phone.messages == [] and [m.sid for m in phone.undelivered] == [created.sid]
    fetched = await client.messages(created.sid).fetch_async()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30005)
    with pytest.raises(AssertionError, match="inbox: \\[\\]"):
        await phone.expect_sms(timeout_s=0.05)


async def test_a_text_from_the_phone_gets_the_twiml_reply(sim: PhoneSimulator, receiver: Receiver) -> None:
    phone = sim.phone(ALICE)

    replies = await phone.send_sms("ACK K7Q2")

    assert replies == ["Acknowledged K7Q2"]
    reply = await phone.expect_sms(contains="acknowledged")
    assert (reply.from_, reply.to) == (SERVICE_NUMBER, ALICE)
    [webhook] = await receiver.expect("/twilio/sms")
    assert {k: webhook.params[k] for k in ("From", "To", "Body", "AccountSid", "NumMedia")} == {
        "From": ALICE,
        "To": SERVICE_NUMBER,
        "Body": "ACK K7Q2",
        "AccountSid": ACCOUNT_SID,
        "NumMedia": "0",
    }
    assert webhook.params["MessageSid"].startswith("SM")


# --- calls -----------------------------------------------------------------------------------------


async def test_answered_call_hears_the_prompt_presses_1_and_completes(
    sim: PhoneSimulator, client: Client, receiver: Receiver
) -> None:
    created = await client.calls.create_async(
        to=ALICE,
        from_=SERVICE_NUMBER,
        url=receiver.url("/voice"),
        status_callback=receiver.url("/call"),
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    assert (created.status, created.direction) == ("queued", "outbound-api")

    call = await sim.phone(ALICE).expect_call()
    assert call.sid == created.sid
    assert await call.expect_prompt() == "Crisis alert for case K7Q2. Press 1 to accept, 2 to decline."
    assert await call.press("1") == "You pressed 1."
    await call.expect_status("completed")

    [twiml_fetch] = await receiver.expect("/voice")
    assert (twiml_fetch.params["CallStatus"], twiml_fetch.params["To"]) == ("in-progress", ALICE)
    assert "AnsweredBy" not in twiml_fetch.params
    [action] = await receiver.expect("/voice/gather")
    assert (action.params["Digits"], action.params["CallSid"]) == ("1", call.sid)
    progress = await receiver.expect("/call", count=4)
    assert [p.params["CallStatus"] for p in progress] == ["initiated", "ringing", "in-progress", "completed"]
    assert [p.params["SequenceNumber"] for p in progress] == ["0", "1", "2", "3"]
    assert progress[-1].params["CallDuration"] == "0"
    assert call.said[-1] == "You pressed 1." and call.errors == []
    assert call.statuses == ["queued", "initiated", "ringing", "in-progress", "completed"]
    await call.expect_reported("completed")
    assert call.reported == ["initiated", "ringing", "in-progress", "completed"]
    fetched = await client.calls(call.sid).fetch_async()
    assert (fetched.status, fetched.duration) == ("completed", "0")


async def test_busy_phone_reports_busy_only(sim: PhoneSimulator, client: Client, receiver: Receiver) -> None:
    sim.phone(ALICE).behaviour = Behaviour(call="busy")

    await client.calls.create_async(
        to=ALICE,
        from_=SERVICE_NUMBER,
        url=receiver.url("/voice"),
        status_callback=receiver.url("/call"),
        status_callback_method="GET",
    )

    call = await sim.phone(ALICE).expect_call()
    await call.expect_status("busy")
    [completed] = await receiver.expect("/call")  # only "completed" is reported by default
    assert (completed.method, completed.params["CallStatus"]) == ("GET", "busy")
    assert not any(r.path == "/voice" for r in receiver.requests)


async def test_answering_machine_presses_nothing_and_the_twiml_runs_out(
    sim: PhoneSimulator, client: Client, receiver: Receiver
) -> None:
    sim.phone(ALICE).behaviour = Behaviour(call="machine")

    await client.calls.create_async(
        to=ALICE,
        from_=SERVICE_NUMBER,
        url=receiver.url("/voice"),
        machine_detection="Enable",
        status_callback=receiver.url("/call"),
    )

    call = await sim.phone(ALICE).expect_call()
    await call.expect_prompt()
    with pytest.raises(AssertionError, match="machine"):
        await call.press("1")
    await call.expect_status("completed")
    assert call.said[-1] == "No key pressed. Goodbye."
    [twiml_fetch] = await receiver.expect("/voice")
    assert twiml_fetch.params["AnsweredBy"] == "machine_start"
    [completed] = await receiver.expect("/call")
    assert completed.params["AnsweredBy"] == "machine_start"
    assert not any(r.path == "/voice/gather" for r in receiver.requests)


async def test_inline_twiml_redirects_and_an_unanswered_gather_falls_through(
    sim: PhoneSimulator, client: Client, receiver: Receiver
) -> None:
    twiml = f"<Response><Say>Hello.</Say><Redirect>{receiver.url('/voice')}</Redirect></Response>"

    await client.calls.create_async(to=ALICE, from_=SERVICE_NUMBER, twiml=twiml)

    call = await sim.phone(ALICE).expect_call()
    assert (await call.expect_prompt()).startswith("Hello. Crisis alert")
    await call.expect_status("completed")  # nobody pressed: the <Gather> timed out
    assert call.said[-1] == "No key pressed. Goodbye."


async def test_failing_twiml_url_ends_the_call_with_an_application_error(
    sim: PhoneSimulator, client: Client, receiver: Receiver
) -> None:
    await client.calls.create_async(to=ALICE, from_=SERVICE_NUMBER, url=receiver.url("/broken"))

    call = await sim.phone(ALICE).expect_call()
    await call.expect_status("completed")
    assert "application error" in call.said[-1]
    assert "500" in call.errors[0]


# --- REST errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500)])
async def test_api_error_behaviour_fails_the_next_create_and_stores_nothing(
    sim: PhoneSimulator, client: Client, status: ApiError, code: int
) -> None:
    sim.phone(ALICE).behaviour = Behaviour(api_error=status, api_error_count=1)

    with pytest.raises(TwilioRestException) as raised:
        await client.messages.create_async(to=ALICE, from_=SERVICE_NUMBER, body="ALERT")

    assert (raised.value.status, raised.value.code) == (status, code)
    assert sim.messages == {}
    await client.messages.create_async(to=ALICE, from_=SERVICE_NUMBER, body="ALERT")
    assert len(sim.messages) == 1


async def test_invalid_to_number_is_refused_with_21211(sim: PhoneSimulator, client: Client) -> None:
    with pytest.raises(TwilioRestException) as raised:
        await client.calls.create_async(to="0612345678", from_=SERVICE_NUMBER, url="http://x/voice")

    assert (raised.value.status, raised.value.code) == (400, 21211)
    assert "'To' number 0612345678 is not a valid phone number" in raised.value.msg


async def test_wrong_credentials_get_401(sim: PhoneSimulator) -> None:
    async with AsyncTwilioHttpClient() as http:
        client = make_client(sim, http, token="wrong")
        with pytest.raises(TwilioRestException) as raised:
            await client.messages.create_async(to=ALICE, from_=SERVICE_NUMBER, body="ALERT")

    assert (raised.value.status, raised.value.code) == (401, 20003)
    assert sim.requests[-1].form["Body"] == "ALERT"


async def test_unknown_message_is_404(sim: PhoneSimulator, client: Client) -> None:
    with pytest.raises(TwilioRestException) as raised:
        await client.messages("SM" + "f" * 32).fetch_async()

    assert (raised.value.status, raised.value.code) == (404, 20404)


# --- control API and page --------------------------------------------------------------------------


async def test_control_api_plays_a_phone_over_http(
    sim: PhoneSimulator, client: Client, receiver: Receiver
) -> None:
    async with aiohttp.ClientSession(base_url=sim.url) as http:
        async with http.get("/") as page:
            assert page.status == 200 and "/sim/state.json" in await page.text()
        async with http.post("/sim/phones/+33612345678/behaviour", json={"sms": "failed"}) as set_ok:
            assert (set_ok.status, (await set_ok.json())["sms"]) == (200, "failed")
        async with http.post(f"/sim/phones/{ALICE}/behaviour", json={"colour": "red"}) as bad:
            assert bad.status == 400 and "colour" in (await bad.json())["detail"]
        async with http.post(f"/sim/phones/{ALICE}/sms", json={"body": "ACK K7Q2"}) as sms:
            assert await sms.json() == {"replies": ["Acknowledged K7Q2"]}

        await client.calls.create_async(to=ALICE, from_=SERVICE_NUMBER, url=receiver.url("/voice"))
        call = await sim.phone(ALICE).expect_call()
        await call.expect_prompt()
        async with http.get("/sim/state.json") as state:
            [phone] = (await state.json())["phones"]
        assert phone["behaviour"]["sms"] == "failed"
        assert [m["body"] for m in phone["messages"]] == ["ACK K7Q2", "Acknowledged K7Q2"]
        assert phone["calls"][0]["waiting_for_digits"] is True
        async with http.post(f"/sim/calls/{call.sid}/digits", json={"digits": "2"}) as press:
            assert await press.json() == {"said": "You pressed 2."}
        async with http.post(f"/sim/calls/{call.sid}/digits", json={"digits": "1"}) as late:
            assert late.status == 409


# --- pure parts ------------------------------------------------------------------------------------


def test_signature_matches_twilios_request_validator() -> None:
    url = "https://example.com/twilio/voice?case=K7Q2&attempt=2"
    params = {"From": "+33612345678", "Body": "ACK é K7Q2", "Digits": "1", "AccountSid": ACCOUNT_SID}

    signature = compute_signature(AUTH_TOKEN, url, params.items())

    assert RequestValidator(AUTH_TOKEN).validate(url, params, signature)


@pytest.mark.parametrize(
    "twiml",
    [
        "<Response><Message>On it</Message></Response>",
        "<Response><Message><Body>On it</Body></Message></Response>",
    ],
)
def test_message_replies_are_read_from_both_twiml_forms(twiml: str) -> None:
    assert parse_messages(twiml) == ["On it"]


def test_voice_twiml_parses_gather_with_defaults() -> None:
    [say, gather, _] = parse_voice(VOICE_TWIML.replace(' timeout="5"', ""))

    assert say == Say("Crisis alert for case K7Q2.")
    assert gather == Gather(
        action="voice/gather?case=K7Q2",
        method="POST",
        num_digits=1,
        timeout_s=5.0,
        action_on_empty_result=False,
        prompts=(Say("Press 1 to accept, 2 to decline."),),
    )


def test_behaviour_names_a_bad_field() -> None:
    with pytest.raises(BehaviourError) as raised:
        Behaviour().updated({"call": "voicemail"})

    assert raised.value.field == "call"
