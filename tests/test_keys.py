"""The data keys (store/sealed.py, `responder keys`): a rotation to a second key, stopped half-way and
run again, leaves every value sealed under the new key and readable with it alone; a start with a
keyring that cannot open what is stored, or with none, is refused with a message naming the setting."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp
import pytest
from sqlalchemy import JSON, Text, select, type_coerce

from responder.simulator import PhoneSimulator
from responder.store.db import Database
from responder.store.models import Case, CaseEvent
from responder.store.sealed import key_of
from tests.harness import (
    API_TOKEN,
    DATA_KEYS,
    Service,
    new_alert_id,
    responder_command,
    sample,
    start_service,
    stop_service,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
NEW_KEY = "t2:bmV3LWRhdGEta2V5LWZvci10aGUtcm90YXRpb24tdGU="  # 32 bytes
BOTH = f"{NEW_KEY},{DATA_KEYS}"


async def open_and_resolve(service: Service) -> str:
    """Two cases, each with a note and an outcome with its reason: 2 alerts, 2 reasons, 4 texts."""
    case_id = ""
    for n in range(2):
        status, body = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
        assert status == 202
        case_id = body["case_id"]
        async with service.http.post(
            f"{service.url}/v1/cases/{case_id}/notes", json={"text": f"note {n}"}, headers=AUTH
        ) as answer:
            assert answer.status in (200, 201), await answer.text()
        status, _ = await service.resolve(case_id, {"outcome": "unable_to_locate", "note": f"reason {n}"})
        assert status == 200
    return case_id


CASES: Any = Case.__table__  # type: ignore[attr-defined]
EVENTS: Any = CaseEvent.__table__  # type: ignore[attr-defined]


async def keys_in_use(db_url: str) -> Counter[str | None]:
    """Which key each stored value is sealed under, read as stored."""
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            as_stored = (type_coerce(CASES.c.alert, Text()), type_coerce(CASES.c.outcome_note, Text()))
            cases = (await conn.execute(select(*as_stored))).all()
            personal = EVENTS.c.type.in_(("note", "case_resolved"))
            query = select(type_coerce(EVENTS.c.detail, JSON())).where(personal)
            details: list[Any] = list((await conn.execute(query)).scalars())
            values: list[Any] = [v for row in cases for v in row]
            values += [d.get(k) for d in details for k in ("text", "note") if d.get(k)]
    finally:
        await db.close()
    return Counter(key_of(v) for v in values)


async def test_a_rotation_stopped_half_way_goes_on_and_the_new_key_alone_then_reads_it_all(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(db_url, sim, http)
    try:
        case_id = await open_and_resolve(service)
    finally:
        await stop_service(service)
    assert await keys_in_use(db_url) == Counter({"t1": 8})

    code, out, err = await responder_command(
        db_url,
        service.url,
        sim.url,
        "keys",
        "rotate",
        "--batch",
        "1",
        "--max-rows",
        "3",
        RESPONDER_DATA_KEYS=BOTH,
    )
    assert code == 0, err
    assert "re-sealed 3 values under key t2; more to do" in out
    assert await keys_in_use(db_url) == Counter({"t2": 3, "t1": 5})

    code, out, err = await responder_command(
        db_url, service.url, sim.url, "keys", "rotate", RESPONDER_DATA_KEYS=BOTH
    )
    assert code == 0, err
    assert "re-sealed 5 values under key t2; every value is under it" in out
    assert await keys_in_use(db_url) == Counter({"t2": 8})

    service = await start_service(db_url, sim, http, migrate=False, RESPONDER_DATA_KEYS=NEW_KEY)
    try:
        case = await service.case(case_id)
        assert case["outcome_note"] == "reason 1"
        assert [e["detail"]["text"] for e in case["timeline"] if e["type"] == "note"] == ["note 1"]
    finally:
        await stop_service(service)


async def test_a_start_with_keys_that_cannot_open_the_data_is_refused(
    db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(db_url, sim, http)
    try:
        await open_and_resolve(service)
    finally:
        await stop_service(service)
    code, _, err = await responder_command(db_url, service.url, sim.url, "serve", RESPONDER_DATA_KEYS=NEW_KEY)
    assert code == 2
    assert "RESPONDER_DATA_KEYS" in err and "'t1'" in err, err
    code, _, err = await responder_command(db_url, service.url, sim.url, "serve", RESPONDER_DATA_KEYS="")
    assert code == 2
    assert "RESPONDER_DATA_KEYS must hold the data keys" in err, err
    code, _, err = await responder_command(
        db_url, service.url, sim.url, "serve", RESPONDER_DATA_KEYS="t3:c2hvcnQ="
    )
    assert code == 2
    assert "the key must be 32 bytes" in err and "c2hvcnQ" not in err, err


async def test_a_value_copied_into_another_cases_row_does_not_open(service: Service) -> None:
    """A sealed value is bound to its column and its case: one moved to another row is refused, never
    shown as that case's."""
    from responder.store.cases import load_case
    from responder.store.sealed import SealError

    first = await open_and_resolve(service)
    status, other = await service.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202
    db = Database(service.settings.env.database_url)
    try:
        async with db.engine.begin() as conn:
            raw = type_coerce(CASES.c.alert, Text())
            stolen = (await conn.execute(select(raw).where(CASES.c.id == first))).scalar_one()
            await conn.execute(
                CASES.update().where(CASES.c.id == other["case_id"]).values(alert=type_coerce(stolen, Text()))
            )
        with pytest.raises(SealError, match="does not open"):
            await load_case(db, other["case_id"])
        case, *_ = await load_case(db, first)  # where it belongs, it still opens
        assert case.alert["alert_id"]
    finally:
        await db.close()


async def test_a_value_sealed_for_its_column_alone_opens_and_the_rotation_binds_it(service: Service) -> None:
    """Values sealed before they were bound to their case (the column's name alone as associated data)
    still open, and `keys rotate` seals them for their case."""
    import base64
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from responder.store.cases import load_case
    from responder.store.sealed import Keyring

    case_id = await open_and_resolve(service)
    keyring = Keyring.parse(DATA_KEYS)
    key_id, key = keyring.keys[0]
    nonce = os.urandom(12)
    old_form = AESGCM(key).encrypt(nonce, b'{"alert_id": "old-form"}', b"case.alert")
    stored = f"sealed:{key_id}:{base64.b64encode(nonce + old_form).decode()}"
    db = Database(service.settings.env.database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(
                CASES.update().where(CASES.c.id == case_id).values(alert=type_coerce(stored, Text()))
            )
        assert (await load_case(db, case_id))[0].alert == {"alert_id": "old-form"}
        code, out, err = await responder_command(
            service.settings.env.database_url, service.url, service.sim.url, "keys", "rotate"
        )
        assert code == 0, err
        assert "re-sealed 1 values" in out, out
        async with db.engine.connect() as conn:
            raw = type_coerce(CASES.c.alert, Text())
            now = (await conn.execute(select(raw).where(CASES.c.id == case_id))).scalar_one()
        assert keyring.bound(now, "case.alert", case_id)
        assert (await load_case(db, case_id))[0].alert == {"alert_id": "old-form"}
    finally:
        await db.close()
