"""Open cases written straight into a benchmark's SQLite database, and what the engine did with them.

Use ``seed_cases()`` before starting the service (after one start-up has synced the roster), then the
``read_*`` functions while it runs (WAL lets this process read beside the service) or after it stopped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, create_engine, func, insert, select
from sqlmodel import col

from responder.clock import ManualClock
from responder.engine.playbook import load_playbooks
from responder.intake.schema import parse_alert
from responder.intake.service import Intake, new_ref
from responder.store.db import Database
from responder.store.models import Case, CaseEvent, Integration, Page
from responder.store.queries import INSERT_EVENT

INTEGRATION = "social-example"
INSERT_CASE = insert(Case)
SEED_BATCH = 1000  # rows per executemany: keeps each statement's parameter list modest


@dataclass(frozen=True)
class Seeded:
    """One case written by the benchmark: its id, its SMS reference and when its step 0 falls due."""

    case_id: str
    ref: str
    due_at: datetime


def sync_engine(db_path: Path) -> Engine:
    """A plain (sync) SQLAlchemy engine on the benchmark database, for seeding and reading."""
    return create_engine(f"sqlite:///{db_path}", connect_args={"timeout": 30})


def integration_id(engine: Engine, name: str = INTEGRATION) -> int:
    """The id the service gave an integration when it synced the roster at start-up."""
    with engine.connect() as conn:
        found = conn.execute(select(col(Integration.id)).where(col(Integration.name) == name)).scalar()
    if found is None:
        raise RuntimeError(f"integration {name!r} missing: start the service once to sync the roster")
    return int(found)


def build_rows(
    intake: Intake, template: dict[str, Any], due_at: datetime, refs: set[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A case row as `Intake._build` makes it (step 0 due at ``due_at``) and its alert_received event."""
    raw = template | {"alert_id": f"engine-bench-{uuid.uuid4().hex}"}
    alert = parse_alert(json.dumps(raw))
    case = intake._build(INTEGRATION, intake.integration_ids[INTEGRATION], alert)
    while case.ref in refs:  # 23^5 references: ~8 clashes expected in 10,000, which intake retries
        case.ref = new_ref()
    refs.add(case.ref)
    # The playbook's chain starts when step 0 is due (skew 0, next_step 0), as if received then.
    case.chain_started_at = case.next_due_at = due_at
    return case.row(), intake._received(INTEGRATION, case, alert)


def seed_cases(db_path: Path, template: dict[str, Any], due_times: Sequence[datetime]) -> list[Seeded]:
    """Insert one open case (and its alert_received event) per due time; bulk Core inserts."""
    engine = sync_engine(db_path)
    try:
        playbooks = load_playbooks(Path(__file__).resolve().parents[1] / "playbooks")
        clock = ManualClock(datetime.now(UTC))
        # Intake._build and _received touch no database: none is given.
        intake = Intake(cast(Database, None), playbooks, {INTEGRATION: integration_id(engine)}, clock)
        refs: set[str] = set()
        seeded: list[Seeded] = []
        for start in range(0, len(due_times), SEED_BATCH):
            pairs = [build_rows(intake, template, due, refs) for due in due_times[start : start + SEED_BATCH]]
            with engine.begin() as conn:
                conn.execute(INSERT_CASE, [case for case, _ in pairs])
                conn.execute(INSERT_EVENT, [event for _, event in pairs])
            seeded += [Seeded(c["id"], c["ref"], c["next_due_at"]) for c, _ in pairs]
        return seeded
    finally:
        engine.dispose()


def read_step_fired(engine: Engine, step: int = 0) -> dict[str, list[datetime]]:
    """case_id → the times of its `step_fired` events for ``step`` (one each, unless a step ran twice)."""
    query = select(col(CaseEvent.case_id), col(CaseEvent.at)).where(
        col(CaseEvent.type) == "step_fired",
        func.json_extract(col(CaseEvent.detail), "$.step") == step,
    )
    fired: dict[str, list[datetime]] = {}
    with engine.connect() as conn:
        for case_id, at in conn.execute(query):
            fired.setdefault(case_id, []).append(at)
    for times in fired.values():
        times.sort()
    return fired


def read_later_steps(engine: Engine) -> list[tuple[str, int, datetime]]:
    """(case_id, step, at) of every `step_fired` event for a step after step 0."""
    step = func.json_extract(col(CaseEvent.detail), "$.step")
    query = select(col(CaseEvent.case_id), step, col(CaseEvent.at)).where(
        col(CaseEvent.type) == "step_fired", step > 0
    )
    with engine.connect() as conn:
        return [(case_id, int(index), at) for case_id, index, at in conn.execute(query)]


def fired_ids(engine: Engine, step: int = 0) -> set[str]:
    """The cases with a committed `step_fired` event for ``step`` (cheap enough to poll)."""
    query = select(col(CaseEvent.case_id)).where(
        col(CaseEvent.type) == "step_fired",
        func.json_extract(col(CaseEvent.detail), "$.step") == step,
    )
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


def step_people(engine: Engine, step: int = 0) -> dict[str, set[str]]:
    """case_id → the people its `step_fired` events for ``step`` say were paged."""
    query = select(col(CaseEvent.case_id), col(CaseEvent.detail)).where(
        col(CaseEvent.type) == "step_fired",
        func.json_extract(col(CaseEvent.detail), "$.step") == step,
    )
    people: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for case_id, detail in conn.execute(query):
            found = json.loads(detail) if isinstance(detail, str) else detail
            people.setdefault(case_id, set()).update(found.get("people", []))
    return people


@dataclass(frozen=True)
class PageRow:
    page_id: str
    case_id: str | None
    step: int | None
    person_id: str
    channel: str
    status: str


def read_pages(engine: Engine) -> list[PageRow]:
    query = select(
        col(Page.id),
        col(Page.case_id),
        col(Page.step),
        col(Page.person_id),
        col(Page.channel),
        col(Page.status),
    )
    with engine.connect() as conn:
        return [PageRow(*row) for row in conn.execute(query)]


def count_open(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(Case).where(col(Case.status) == "open")).scalar()
            or 0
        )
