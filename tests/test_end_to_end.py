"""The mission end to end: a signed alert pages the region's on-call people and is accepted from a phone."""

from __future__ import annotations

from datetime import datetime

from tests.harness import Service, new_alert_id, sample


async def test_alert_pages_negotiator_by_sms_then_voice_and_ack_stops_paging(service: Service) -> None:
    status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202 and body["duplicate"] is False and body["status"] == "open"

    ana = service.phone_of("ana")  # FR-75 primary negotiator
    sms = await ana.expect_sms(contains="ACK")
    assert "IMMINENT" in sms.body.upper() and "FR-75" in sms.body
    assert "Camille" not in sms.body and "fin" not in sms.body  # no identity, no excerpt
    call = await ana.expect_call()
    prompt = await call.expect_prompt()
    assert "1" in prompt
    said = await call.press("1")
    assert "Accept" in said or "ccept" in said

    case = await service.case(body["case_id"])
    assert case["status"] == "acknowledged"
    assert case["accepted_by"]["id"] == "ana"
    types = [e["type"] for e in case["timeline"]]
    assert types[0] == "alert_received"
    assert "page_sent" in types and "case_accepted" in types
    received = datetime.fromisoformat(case["received_at"])
    for page in case["pages"]:
        if page["sent_at"]:  # stored and read back as UTC on both databases (a zone slip is hours)
            sent_s = (datetime.fromisoformat(page["sent_at"]) - received).total_seconds()
            assert 0 <= sent_s < 180  # case time: before the backup tier (+3m), which never came
    ines = service.phone_of("ines")
    await ines.expect_sms(contains="pris par Ana")
