"""Backups (`responder backup PATH`, store/backup.py): taken from a running service on SQLite, the copy is
a new file for its owner alone with every case in it, the person's data sealed and no key; it never
goes over an existing file; restored, it opens with the keyring it was taken under. On PostgreSQL the
command prints the pg_dump line for the database and takes nothing itself."""

from __future__ import annotations

import base64
import shutil
import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from responder.simulator import PhoneSimulator
from responder.store.migrate import head_revision
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
from tests.test_privacy_at_rest import MARKERS, marked_alert

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
async def on_sqlite(
    tmp_path: Path, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> AsyncIterator[Service]:
    """A running service on SQLite (a backup by the command is SQLite's; PostgreSQL's is pg_dump's)."""
    running = await start_service(f"sqlite+aiosqlite:///{tmp_path}/live/responder.db", sim, http)
    yield running
    await stop_service(running)


async def backup(service: Service, path: Path) -> tuple[int, str, str]:
    env = service.settings.env
    return await responder_command(env.database_url, service.url, service.sim.url, "backup", str(path))


async def take_marked_case(service: Service) -> str:
    """A case with a marker in every personal field: the alert's, a note's, the outcome's reason."""
    status, body = await service.post_alert(marked_alert())
    assert status == 202, body
    case_id: str = body["case_id"]
    async with service.http.post(
        f"{service.url}/v1/cases/{case_id}/notes", json={"text": MARKERS["note"]}, headers=AUTH
    ) as answer:
        assert answer.status == 201, await answer.text()
    status, _ = await service.resolve(case_id, {"outcome": "located_safe", "note": MARKERS["outcome_note"]})
    assert status == 200
    return case_id


def case_count(path: Path) -> int:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        count: int = conn.execute('SELECT count(*) FROM "case"').fetchone()[0]
        return count
    finally:
        conn.close()


async def test_a_backup_taken_while_the_service_runs_is_a_new_file_for_its_owner_with_every_case_sealed(
    on_sqlite: Service, tmp_path: Path
) -> None:
    await take_marked_case(on_sqlite)
    status, _ = await on_sqlite.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202  # an open case too: 2 in all, what the WAL holds read through it

    path = tmp_path / "backups" / "responder-1.db"
    path.parent.mkdir()
    code, out, err = await backup(on_sqlite, path)
    assert code == 0, err
    size = path.stat().st_size
    assert f"wrote {path} ({size} bytes, schema revision {head_revision()})" in out
    assert "RESPONDER_DATA_KEYS" in out and "keep them apart" in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]  # one file that stands alone: no WAL beside it

    assert case_count(path) == 2
    raw = path.read_bytes()
    assert b"sealed:" in raw  # the cases are there, sealed
    found = [name for name, marker in MARKERS.items() if marker.encode() in raw]
    assert found == [], f"in clear in the backup: {found}"
    key = DATA_KEYS.partition(":")[2]
    assert key.encode() not in raw and base64.b64decode(key) not in raw
    assert key not in out + err

    status, _ = await on_sqlite.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202  # the backup held nothing up
    assert case_count(path) == 2


async def test_a_second_backup_to_the_same_path_is_refused_and_leaves_the_first_as_it_was(
    on_sqlite: Service, tmp_path: Path
) -> None:
    await take_marked_case(on_sqlite)
    path = tmp_path / "responder.db.bak"
    code, _, err = await backup(on_sqlite, path)
    assert code == 0, err
    first = path.read_bytes()
    status, _ = await on_sqlite.post_alert(sample("imminent-live-fr.json", alert_id=new_alert_id()))
    assert status == 202  # so that a second copy would differ

    code, out, err = await backup(on_sqlite, path)
    assert code == 2
    assert err == f"responder: {path} exists: give a new file (a backup never overwrites one)\n"
    assert out == ""
    assert path.read_bytes() == first and stat.S_IMODE(path.stat().st_mode) == 0o600

    live = Path(on_sqlite.settings.env.database_url.split(":///", 1)[1])
    code, _, err = await backup(on_sqlite, live)  # nor over the live database itself
    assert code == 2 and "exists" in err


async def test_a_restored_backup_opens_with_the_keyring_it_was_taken_under(
    tmp_path: Path, sim: PhoneSimulator, http: aiohttp.ClientSession
) -> None:
    service = await start_service(f"sqlite+aiosqlite:///{tmp_path}/live/responder.db", sim, http)
    try:
        case_id = await take_marked_case(service)
        path = tmp_path / "responder-1.db"
        code, _, err = await backup(service, path)
        assert code == 0, err
    finally:
        await stop_service(service)

    restored = tmp_path / "restored" / "responder.db"
    restored.parent.mkdir()
    shutil.copyfile(path, restored)  # the restore: the service stopped, the file copied back
    service = await start_service(f"sqlite+aiosqlite:///{restored}", sim, http, migrate=False)
    try:
        case = await service.case(case_id)
        assert case["outcome_note"] == MARKERS["outcome_note"]
        assert [e["detail"]["text"] for e in case["timeline"] if e["type"] == "note"] == [MARKERS["note"]]
    finally:
        await stop_service(service)


async def test_on_postgresql_it_prints_the_pg_dump_line_and_takes_nothing(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://responder:pg-password-9f3e@db.example:5433/responder_prod"
    path = tmp_path / "responder.dump"
    nowhere = "http://127.0.0.1:9"  # no service and no simulator: the command reaches neither
    code, out, err = await responder_command(url, nowhere, nowhere, "backup", str(path))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"pg_dump -Fc -h db.example -p 5433 -U responder -d responder_prod -f {path}"
    assert "pg-password-9f3e" not in out + err
    assert "PGPASSWORD" in out and "encrypt" in out and "RESPONDER_DATA_KEYS" in out
    assert not path.exists()
