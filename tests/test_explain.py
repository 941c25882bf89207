"""`responder playbook explain`: the dry run agrees with PRODUCT.md §3's default timeline."""

from __future__ import annotations

import subprocess
import sys

from tests.harness import ROOT


def explain(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "responder", "playbook", "explain", "playbooks/imminent-risk.yaml", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def line_at(lines: list[str], stamp: str) -> str:
    return next(line for line in lines if line.strip().startswith(stamp + " "))


def test_if_nobody_answers() -> None:
    lines = explain("--alert", "tests/samples/imminent-live-fr.json")
    assert "region FR-75, if nobody answers" in lines[0]
    assert "SMS to Ines Duty-Investigator, Ana Negotiator" in line_at(lines, "T+0:00")
    assert "voice call to Ines Duty-Investigator, Ana Negotiator" in line_at(lines, "T+1:00")
    assert "Bruno Negotiator" in line_at(lines, "T+3:00")
    assert "Tom Team-Lead" in line_at(lines, "T+5:00")
    assert "Maya Manager" in line_at(lines, "T+10:00")
    assert "pass 2" in line_at(lines, "T+15:00")
    all_hands = line_at(lines, "T+45:00")
    assert "ALL HANDS" in all_hands and "Maya Manager notified" in all_hands
    assert "every 10m until someone accepts" in lines[-1]


def test_an_accept_at_4m_stops_the_rest() -> None:
    lines = explain("--region", "FR-75", "--accept-at", "4m")
    accepted = lines.index(line_at(lines, "T+4:00"))
    assert "accepted" in lines[accepted]
    assert lines[accepted + 1].startswith("These would have followed")
    assert "Tom Team-Lead" in lines[accepted + 2] and "T+5:00" in lines[accepted + 2]


def test_bad_accept_time_is_named() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "responder",
            "playbook",
            "explain",
            "playbooks/imminent-risk.yaml",
            "--accept-at",
            "soon",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "--accept-at: invalid duration 'soon'" in result.stderr
