"""Identity never reaches the logs nor an error answer. A real `responder serve`, its stdout and stderr
captured, gets an alert with one marker in every personal field, the same alert while the database
refuses it, requests aiohttp cannot parse, and a failed login by that marker: the marker appears in
no output and no answer."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy import text

from responder.simulator import PhoneSimulator
from responder.store.db import Database
from responder.tools import signed_headers
from tests.harness import ROOT, SOCIAL_SECRET, new_alert_id, sample
from tests.process import STARTUP_TIMEOUT_S, ServiceProcess
from tests.web import csrf_of


@dataclass
class CapturedService(ServiceProcess):
    """`responder serve` with every line of its stdout and stderr kept."""

    stdout: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        self.sim.sms_webhook_url = f"{self.url}/twilio/sms"
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "responder",
            "serve",
            "--port",
            str(self.port),
            env={**self.env(), "RESPONDER_LOG_LEVEL": "debug"},  # every line the service can write
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        listening = asyncio.Event()
        self.readers = [
            asyncio.create_task(self._keep(self.process.stdout, self.stdout, listening)),
            asyncio.create_task(self._keep(self.process.stderr, self.log_lines, listening)),
        ]
        exited = asyncio.create_task(self.process.wait())
        ready = asyncio.create_task(listening.wait())
        await asyncio.wait({exited, ready}, timeout=STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        ready.cancel()
        assert listening.is_set(), "service did not start:\n" + "\n".join(self.log_lines[-30:])

    @staticmethod
    async def _keep(stream: asyncio.StreamReader, lines: list[str], listening: asyncio.Event) -> None:
        while line := await stream.readline():
            lines.append(line.decode(errors="replace"))
            if '"service_listening"' in lines[-1]:
                listening.set()

    async def finish(self) -> str:
        """Stop the service; everything it wrote, once both pipes are closed."""
        await self.stop()
        await asyncio.gather(*self.readers)
        return "".join(self.stdout) + "".join(self.log_lines)


def marked_alert(marker: str) -> dict[str, Any]:
    """The Paris sample with the marker in every field that tells who or where the person is."""
    alert = sample("imminent-live-fr.json", alert_id=new_alert_id())
    alert["content"] |= {"url": f"https://social.example/live/{marker}", "excerpt": f"ce soir {marker}"}
    alert["subject"] = {
        "account_id": marker,
        "profile_url": f"https://social.example/u/{marker}",
        "display_name": f"Camille {marker}",
        "languages": ["fr"],
    }
    alert["location_hints"] = [
        {"kind": "text", "value": f"pont {marker}", "region": "FR-75", "source": f"note {marker}"},
    ]
    alert["platform_contact"] = {
        "phone": "+33100000000",
        "email": f"{marker}@social.example",
        "emergency_request_url": f"https://social.example/{marker}",
        "reference": marker,
    }
    return alert


def framing_errors(marker: str) -> list[bytes]:
    """Requests aiohttp's parser refuses, each quoting the marker in the bytes it refuses."""
    m = marker.encode()
    return [
        b"GET / HTTP/1.1\r\nHost: responder\r\nX-" + m + b"\x01: y\r\n\r\n",  # bad header name
        b"GET /?q=" + m + b"\x7f HTTP/1.1\r\nHost: responder\r\n\r\n",  # bad request target
        b"POST /v1/alerts HTTP/1.1\r\nHost: responder\r\nContent-Length: " + m + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: responder\r\nX-Name: " + m + b"\x00\r\n\r\n",  # NUL in a value
        m + b"\x01 / HTTP/1.1\r\nHost: responder\r\n\r\n",  # bad method (aiohttp logs it at debug)
    ]


async def raw_exchange(url: str, request: bytes) -> bytes:
    """Send bytes on a bare socket; what came back until the service closed the connection."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def refuse_inserts(db_url: str, table: str) -> None:
    """From now on every INSERT into `table` fails inside the database: a real driver error."""
    db = Database(db_url)
    try:
        async with db.engine.begin() as conn:
            if db.is_sqlite:
                await conn.execute(
                    text(
                        f'CREATE TRIGGER refuse_{table} BEFORE INSERT ON "{table}" '
                        "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
                    )
                )
            else:
                await conn.execute(
                    text(
                        f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'forced failure'; END $$"
                    )
                )
                await conn.execute(
                    text(
                        f'CREATE TRIGGER refuse_{table} BEFORE INSERT ON "{table}" '
                        f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
                    )
                )
    finally:
        await db.close()


def events(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


async def test_no_personal_field_reaches_a_log_line_or_an_error_answer(
    db_url: str, sim: PhoneSimulator
) -> None:
    marker = f"mk{uuid.uuid4().hex[:10]}"
    service = CapturedService(db_url, sim)
    await service.run("db", "upgrade")
    answers: list[str] = []  # every answer: status line, headers and body
    try:
        await service.start()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:

            async def post_alert(alert: dict[str, Any]) -> tuple[int, str]:
                body = json.dumps(alert)
                async with http.post(
                    f"{service.url}/v1/alerts", data=body, headers=signed_headers(SOCIAL_SECRET, body)
                ) as response:
                    text = await response.text()
                    answers.append(f"{response.status} {dict(response.headers)} {text}")
                    return response.status, text

            # (a) stored: paged, logged
            status, _ = await post_alert(marked_alert(marker))
            assert status == 202
            # (b) the database refuses it: not stored, so not 2xx, and a bare answer
            await refuse_inserts(db_url, "case")
            status, text = await post_alert(marked_alert(marker))
            assert status == 500 and json.loads(text).keys() == {"error", "request_id"}

            # (d) a failed login by the marker
            async with http.get(f"{service.url}/login") as response:
                page = await response.text()
            form = {"csrf": csrf_of(page), "username": marker, "password": f"pw-{marker}", "next": "/"}
            async with http.post(f"{service.url}/login", data=form) as response:
                answers.append(f"{response.status} {dict(response.headers)} {await response.text()}")
                assert response.status == 401

        # (c) requests aiohttp cannot parse: a bare 400, the bytes not quoted back
        for request in framing_errors(marker):
            answer = (await raw_exchange(service.url, request)).decode(errors="replace")
            answers.append(answer)
            assert re.match(r"HTTP/1\.[01] 400 Bad Request\r\n", answer), answer
            assert answer.endswith("\r\n\r\nBad Request"), answer
    finally:
        output = await service.finish()

    logged = events(output)
    seen = {e["event"] for e in logged}
    assert {"alert_received", "page_sent", "request_crashed"} <= seen, sorted(seen)
    crashed = next(e for e in logged if e["event"] == "request_crashed")
    assert "Traceback" in crashed["exception"]  # the traceback is there, the alert is not
    assert any(e.get("logger") == "aiohttp.server" and "exception" in e for e in logged), output
    for answer in answers:
        assert marker not in answer, answer
    assert marker not in output, [line for line in output.splitlines() if marker in line]
