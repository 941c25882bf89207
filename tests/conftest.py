"""Fixtures: every database test runs on SQLite and on PostgreSQL (a fresh database per test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from responder.logging import configure_logging
from responder.simulator import PhoneSimulator
from tests.harness import ACCOUNT_SID, AUTH_TOKEN, SERVICE_NUMBER, Service, start_service, stop_service


def pytest_configure(config: pytest.Config) -> None:
    """The in-process services log through the service's own processors, as `responder serve` does
    (structlog's default renders every exception with rich and its locals: seconds each on a busy
    machine, with the event loop blocked). Info and up reach them, so tests can wait on an event."""
    configure_logging("json", "info")


PG_ADMIN_DSN = os.environ.get("RESPONDER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _pg_reachable() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/responder.db"
        return
    if not await _pg_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL unreachable at {PG_ADMIN_DSN}: CI must run the PostgreSQL tests")
        pytest.skip("PostgreSQL unreachable (set CI=1 to make this a failure)")
    name = f"responder_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def sim() -> AsyncIterator[PhoneSimulator]:
    simulator = PhoneSimulator(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        sms_webhook_url="http://127.0.0.1:9/",
        service_numbers=[SERVICE_NUMBER],
        callback_delay_s=0.01,
        time_scale=0.01,
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def service(db_url: str, sim: PhoneSimulator, http: aiohttp.ClientSession) -> AsyncIterator[Service]:
    running = await start_service(db_url, sim, http)
    yield running
    await stop_service(running)
