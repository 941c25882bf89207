"""`make demo SCRIPTED=1`: the main job, end to end, as a new user runs it (embedded SQLite by design)."""

from __future__ import annotations

import subprocess
import sys

from tests.harness import ROOT


def test_the_scripted_demo_ends_with_the_case_accepted() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "responder", "demo", "--scripted"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "POST /v1/alerts → 202" in out
    for event in ("alert_received", "step_fired", "page_sent", "page_delivered", "case_accepted"):
        assert event in out, event
    assert "accepted by Ana Negotiator via voice." in out
    assert "log in as ana" in out
