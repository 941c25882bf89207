"""A corpus of broken playbooks: each is refused with a message naming file, line and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from responder.app import check_playbooks
from responder.engine.playbook import load_playbooks
from responder.errors import ConfigError
from tests.harness import ROOT, shipped_roster

DEFAULT = (ROOT / "playbooks" / "imminent-risk.yaml").read_text()

# (what is wrong, text to replace, replacement, expected message fragment with file:line: field)
MISTAKES = [
    (
        "bad duration",
        "ack_timeout: 3m",
        "ack_timeout: 3 minutes",
        ":15: paging.tiers[0].ack_timeout: invalid duration",
    ),
    ("unknown key", "ack_timeout: 2m", "ack_timout: 2m", ":19: paging.tiers[1].ack_timout: Extra inputs"),
    ("missing ack timeout", "ack_timeout: 2m", "", ":16: paging.tiers[1].ack_timeout: Field required"),
    (
        "unknown channel",
        "{channel: voice, after: 1m}",
        "{channel: fax, after: 1m}",
        "paging.tiers[0].channels[1].channel",
    ),
    (
        "channel after the timeout",
        "{channel: voice, after: 1m}",
        "{channel: voice, after: 4m}",
        ":8: paging.tiers[0]: channel voice starts at or after the ack_timeout",
    ),
    (
        "dangling next",
        "    - id: backup-negotiator",
        "    - id: backup-negotiator\n      next: nowhere",
        "next names unknown tier 'nowhere'",
    ),
    (
        "next points back",
        "    - id: team-lead ",
        "    - id: team-lead\n      next: first-responders\n    # ",
        "next must point to a later tier",
    ),
    (
        "unreachable tier",
        "    - id: backup-negotiator",
        "    - id: backup-negotiator\n      next: manager",
        "tiers never reached: team-lead",
    ),
    ("duplicate tier id", "    - id: manager ", "    - id: team-lead ", "tier id 'team-lead' is used twice"),
    (
        "target with role and person",
        "[{role: team_lead}]",
        "[{role: team_lead, person: tom}]",
        "paging.tiers[2].targets[0]: give exactly one of 'role', 'schedule' or 'person'",
    ),
    ("unknown role", "[{role: team_lead}]", "[{role: boss}]", "paging.tiers[2].targets[0].role"),
    (
        "too many repeats",
        "repeat: 2 ",
        "repeat: 11 ",
        ":28: paging.repeat: Input should be less than or equal to 10",
    ),
    ("no exhausted action", "  exhausted:", "  exhausted_typo:", "paging.exhausted: Field required"),
    (
        "all-hands every 0s",
        "every: 10m",
        "every: 0s",
        ":29: paging.exhausted: every must be more than 0s",
    ),
    (
        "unknown all-hands role",
        "page_all: [negotiator, investigator, team_lead]",
        "page_all: [negotiator, dog]",
        "paging.exhausted.page_all[1]",
    ),
    ("bad task due", "due: 2m}", "due: soon}", ":36: tasks[0].due: invalid duration 'soon'"),
    ("duplicate task id", "{id: identify,", "{id: triage,", "task id 'triage' is used twice"),
    ("bad name", "name: imminent-risk", "name: Imminent Risk", ":2: name: String should match pattern"),
    (
        "bad match level",
        "default: true",
        "default: true\nmatch: {risk_level: [extreme]}",
        "match.risk_level[0]",
    ),
    (
        "quiet for 0s",
        "tasks:",
        "reescalate: {quiet_for: 0s}\ntasks:",
        "reescalate: quiet_for must be more than 0s",
    ),
    (
        "unknown reaction",
        "tasks:",
        "reactions: {went_dark: {repage: true}}\ntasks:",
        "reactions.went_dark: Extra inputs",
    ),
    ("YAML syntax", "paging:", "paging: [", "YAML syntax"),
    (
        "unless_done names no task",
        "unless_done: locate}",
        "unless_done: find}",
        "task 'disclosure-request': unless_done names no other task ('find')",
    ),
    (
        "unknown condition",
        "    - id: backup-negotiator",
        "    - id: backup-negotiator\n      when: {is_alive: true}",
        "paging.tiers[1].when.is_alive: Extra inputs",
    ),
    (
        "tier waits for a task that does not exist",
        "    - id: backup-negotiator",
        "    - id: backup-negotiator\n      if_done: identfy",
        "tier 'backup-negotiator': if_done names no task of this playbook ('identfy')",
    ),
]

ROSTER_MISTAKES = [
    (
        "schedule target names no schedule",
        "[{role: team_lead}]",
        "[{schedule: team-leeds}]",
        "paging.tiers[2].targets[0].schedule: no schedule 'team-leeds' with a 'primary' layer",
    ),
    (
        "role target names a layer no schedule has",
        "[{role: negotiator, layer: backup}]",
        "[{role: negotiator, layer: tertiary}]",
        "paging.tiers[1].targets[0].layer: no schedule has a 'tertiary' layer for negotiator",
    ),
]


@pytest.mark.parametrize(
    ("label", "old", "new", "expected"), ROSTER_MISTAKES, ids=[m[0] for m in ROSTER_MISTAKES]
)
def test_a_playbook_naming_what_the_roster_lacks_is_refused(
    tmp_path: Path, label: str, old: str, new: str, expected: str
) -> None:
    assert old in DEFAULT
    (tmp_path / "imminent-risk.yaml").write_text(DEFAULT.replace(old, new, 1))
    playbooks = load_playbooks(tmp_path)
    problems = check_playbooks(shipped_roster(), playbooks)
    assert any("imminent-risk.yaml:" in p and expected in p for p in problems), problems


@pytest.mark.parametrize(("label", "old", "new", "expected"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_broken_playbook_is_refused_with_file_line_and_field(
    tmp_path: Path, label: str, old: str, new: str, expected: str
) -> None:
    assert old in DEFAULT, f"corpus entry {label!r} no longer matches the default playbook"
    shutil.copy(ROOT / "playbooks" / "standard-risk.yaml", tmp_path / "standard-risk.yaml")
    (tmp_path / "imminent-risk.yaml").write_text(DEFAULT.replace(old, new, 1))
    with pytest.raises(ConfigError) as refused:
        load_playbooks(tmp_path)
    text = "\n".join(refused.value.problems)
    assert "imminent-risk.yaml:" in text and expected in text, text
    assert "after validation" not in text  # no follow-on noise from an item already reported


def test_the_corpus_is_big_enough() -> None:
    assert len(MISTAKES) >= 15
