"""Secrets too short to keep guessing out: `responder serve` refuses them, `responder check` warns,
and neither ever prints one. `check` also warns about a plain-http public URL (localhost aside)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT, environment

# Each too weak in its own way; every one must be named in the answer, none quoted.
WEAK = {
    "RESPONDER_API_TOKEN": "api-token-of-31-characters-xxxx",
    "RESPONDER_LINK_SECRET": "a-short-link-secret",
    "RESPONDER_ICAL_SECRET": "a-short-ical-secret",
    "RESPONDER_SECRET_SOCIAL_EXAMPLE": "whsec_" + base64.b64encode(b"23-bytes-of-key-nowhere").decode(),
    "RESPONDER_SECRET_FORUM_EXAMPLE": "whsec_not-base64-at-all!",
}


def responder(tmp_path: Path, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = environment(
        f"sqlite+aiosqlite:///{tmp_path}/responder.db", "http://127.0.0.1:8080", "http://127.0.0.1:1"
    )
    args = [command, "--port", "1"] if command == "serve" else [command]  # serve stops before binding
    return subprocess.run(
        [sys.executable, "-m", "responder", *args],
        env={**os.environ, **base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_no_secret_in(output: str) -> None:
    for secret in WEAK.values():
        assert secret.removeprefix("whsec_") not in output, "a secret was printed"


def test_serve_refuses_short_secrets_and_names_each(tmp_path: Path) -> None:
    assert len(WEAK["RESPONDER_API_TOKEN"]) == 31  # one short of the floor
    result = responder(tmp_path, "serve", **WEAK)
    assert result.returncode == 2, result.stderr
    assert "environment RESPONDER_API_TOKEN: too short: use at least 32 random characters" in result.stderr
    assert "environment RESPONDER_LINK_SECRET: too short" in result.stderr
    assert "environment RESPONDER_ICAL_SECRET: too short" in result.stderr
    assert (
        "integrations[0].secret_env: environment variable RESPONDER_SECRET_SOCIAL_EXAMPLE: the base64 "
        "after whsec_ must decode to at least 24 random bytes" in result.stderr
    )
    assert "RESPONDER_SECRET_FORUM_EXAMPLE: must be whsec_ followed by base64" in result.stderr
    assert_no_secret_in(result.stdout + result.stderr)


def test_check_warns_about_short_secrets_and_a_plain_http_public_url(tmp_path: Path) -> None:
    result = responder(tmp_path, "check", **WEAK, RESPONDER_PUBLIC_URL="http://responder.example.org")
    assert result.returncode == 0, result.stderr  # the files are fine; secrets belong to where it runs
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    for name in WEAK:
        assert any(name in w and "refused by `responder serve`" in w for w in warnings), (name, warnings)
    assert any(w.startswith("warning: environment RESPONDER_PUBLIC_URL: http:// sends") for w in warnings)
    assert_no_secret_in(result.stdout + result.stderr)


def test_check_is_quiet_with_long_secrets_on_localhost_and_says_when_feeds_are_off(tmp_path: Path) -> None:
    result = responder(tmp_path, "check", RESPONDER_ICAL_SECRET="")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # plain http is fine on localhost (the demo, the tests)
    assert "note: RESPONDER_ICAL_SECRET is not set: the calendar feeds are off (404)" in result.stderr
