"""`responder check` and start-up validation: every error names file, line and field."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import FORUM_SECRET, ROOT, SOCIAL_SECRET


def run_check(config: Path, playbooks: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "RESPONDER_CONFIG": str(config),
        "RESPONDER_PLAYBOOKS_DIR": str(playbooks),
        "RESPONDER_SECRET_SOCIAL_EXAMPLE": SOCIAL_SECRET,
        "RESPONDER_SECRET_FORUM_EXAMPLE": FORUM_SECRET,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "responder", "check"], env=environ, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "responder.yaml"
    shutil.copy(ROOT / "config" / "responder.yaml", config)
    playbooks = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks", playbooks)
    shutil.copytree(ROOT / "config" / "schedules", tmp_path / "schedules")
    return config, playbooks


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_shipped_config_and_playbooks_pass(tree: tuple[Path, Path]) -> None:
    result = run_check(*tree)
    assert result.returncode == 0, result.stderr
    assert "imminent-risk" in result.stdout


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "config",
            'phone: "+33639980002"',
            'phone: "0639980002"',
            "responder.yaml:14: people[2].phone: not an E.164 phone number",
        ),
        ("config", "roles: [manager]", "roles: [boss]", "responder.yaml:17: people[5].roles[0]"),
        (
            "config",
            "    duplicate: {identity: 7d, notes: 7d}",
            "    duplicate: {identity: 7d, notes: 10m}",
            "responder.yaml:33: retention.outcomes.duplicate.notes: keep it from 1h to 3650d",
        ),
        (
            "config",
            "    duplicate: {identity: 7d, notes: 7d}",
            "    dupe: {identity: 7d}",
            "retention.outcomes: unknown outcome 'dupe' (one of located_safe,",
        ),
        (
            "team-leads.yaml",
            "{name: primary, people: [tom]}",
            "{name: primary, people: [tim]}",
            "team-leads.yaml:7: layers[0].people[0]: unknown person 'tim'",
        ),
        (
            "team-leads.yaml",
            "{name: primary, people: [tom]}",
            "{name: primary, people: [maya]}",
            "layers[0].people[0]: 'maya' does not have the role team_lead",
        ),
        (
            "team-leads.yaml",
            "{name: primary, people: [tom]}",
            "{name: primary, people: [tom, ines], rotation: fortnightly, start: 2026-11-02}",
            "team-leads.yaml:7: layers[0].rotation: give hourly, daily, weekly or a duration",
        ),
        (
            "team-leads.yaml",
            "{name: primary, people: [tom]}",
            "{name: primary, people: [tom, maya]}",
            "layers[0]: start: give the date of the first hand-off when the layer rotates",
        ),
        (
            "team-leads.yaml",
            "time_zone: Europe/Paris",
            "time_zone: Europe/Pariss",
            "team-leads.yaml:5: time_zone: unknown time zone 'Europe/Pariss'",
        ),
        (
            "team-leads.yaml",
            "{name: primary, people: [tom]}",
            "{name: primary, people: [tom], hours: 8-20}",
            "layers[0].hours: write local hours as HH:MM-HH:MM",
        ),
        (
            "team-leads.yaml",
            "layers:",
            "overrides:\n  - {person: tom, start: 2026-12-24T18:00:00+01:00,"
            " end: 2026-12-24T08:00:00+01:00}\nlayers:",
            "overrides[0]: end must be after start",
        ),
        (
            "config",
            "default_team: [lee, tom]",
            "default_team: [lee, tim]",
            "default_team[1]: unknown person 'tim'",
        ),
        (
            "config",
            "programme: Example crisis line",
            "programme: x\ncolour: blue",
            "responder.yaml:4: colour: Extra inputs are not permitted",
        ),
        (
            "playbook",
            "ack_timeout: 3m",
            "ack_timeout: 3 minutes",
            "imminent-risk.yaml:15: paging.tiers[0].ack_timeout: invalid duration",
        ),
        (
            "playbook",
            "    - id: backup-negotiator",
            "    - id: backup-negotiator\n      next: nowhere",
            "next names unknown tier 'nowhere'",
        ),
        ("playbook", "  exhausted:", "  exhausted_typo:", "paging.exhausted: Field required"),
        (
            "playbook",
            "{channel: voice, after: 1m}",
            "{channel: fax, after: 1m}",
            "paging.tiers[0].channels[1].channel",
        ),
        ("playbook", "default: true", "default: false", "exactly one playbook must say 'default: true'"),
        (
            "playbook",
            "[{role: negotiator, layer: backup}]",
            "[{role: negotiator, layer: reserve}]",
            "paging.tiers[1].targets[0].layer: no schedule has a 'reserve' layer for negotiator",
        ),
        ("managers.yaml", "id: managers", "id: team-leads", "id: 'team-leads' is also the id in"),
    ],
)
def test_mistakes_are_named_with_file_line_and_field(
    tree: tuple[Path, Path], file: str, old: str, new: str, expected: str
) -> None:
    config, playbooks = tree
    target = {"config": config, "playbook": playbooks / "imminent-risk.yaml"}.get(file)
    edit(target or config.parent / "schedules" / file, old, new)
    result = run_check(config, playbooks)
    assert result.returncode == 2
    assert expected in result.stderr, result.stderr


def test_missing_secret_and_bad_environment_are_named(tree: tuple[Path, Path]) -> None:
    result = run_check(
        *tree, RESPONDER_SECRET_FORUM_EXAMPLE="", RESPONDER_TIME_SCALE="5", RESPONDER_PUBLIC_URL="not a url"
    )
    assert result.returncode == 2
    assert "environment RESPONDER_TIME_SCALE" in result.stderr
    assert "environment RESPONDER_PUBLIC_URL: must be an absolute http(s) URL" in result.stderr


def test_two_people_with_one_phone_are_refused(tree: tuple[Path, Path]) -> None:
    config, playbooks = tree
    edit(config, 'phone: "+33639980006"', 'phone: "+33639980001"')
    result = run_check(config, playbooks)
    assert result.returncode == 2
    assert "people[1].phone: also 'ines''s phone" in result.stderr


def test_missing_integration_secret_is_a_warning_for_check_and_refused_by_serve(
    tree: tuple[Path, Path],
) -> None:
    result = run_check(*tree, RESPONDER_SECRET_FORUM_EXAMPLE="")
    assert result.returncode == 0  # the files are fine; secrets belong to where the service runs
    assert "warning:" in result.stderr
    assert "integrations[1].secret_env: environment variable RESPONDER_SECRET_FORUM_EXAMPLE" in result.stderr
    config, playbooks = tree
    serve = subprocess.run(
        [sys.executable, "-m", "responder", "serve", "--port", "1"],
        env={
            **os.environ,
            "RESPONDER_CONFIG": str(config),
            "RESPONDER_PLAYBOOKS_DIR": str(playbooks),
            "RESPONDER_SECRET_SOCIAL_EXAMPLE": SOCIAL_SECRET,
            "RESPONDER_SECRET_FORUM_EXAMPLE": "",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert serve.returncode == 2 and "RESPONDER_SECRET_FORUM_EXAMPLE" in serve.stderr
