"""Subject requests (`responder subject export|erase`): what the service holds about one person, for the
data-protection officer, and its erasure. Both find the person's cases through their pseudonym
(intake/pseudonyms.py), never by searching the sealed data, and both are audited: a row for the
request (even one that finds nothing) and one per case.

An export opens the sealed fields (it needs RESPONDER_DATA_KEYS) and writes them as JSON to a new file
readable by its owner alone. An erasure redacts both parts of every resolved case of the person at
once (store/retention.py) and forgets their pseudonym; an open case, or one on legal hold, is left as
it is and named, so the officer can come back to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime
from typing import Any

from responder.clock import utcnow
from responder.domain import RESOLVED
from responder.errors import ConfigError
from responder.intake.pseudonyms import Pseudonyms
from responder.settings import Settings
from responder.store import retention
from responder.store.cases import load_case
from responder.store.db import Database
from responder.store.sealed import use_keyring


def run(settings: Settings, args: argparse.Namespace) -> int:
    """`responder subject export|erase`."""
    if args.subject_command == "export":
        return asyncio.run(export(settings, args.integration, args.account_id, args.out, args.requested_by))
    return asyncio.run(erase(settings, args.integration, args.account_id, args.requested_by))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _subject_key(settings: Settings, integration: str, account_id: str) -> str:
    problems = []
    if integration not in {i.name for i in settings.config.integrations}:
        names = ", ".join(i.name for i in settings.config.integrations)
        problems.append(f"--integration: unknown integration {integration!r} (one of {names})")
    if not account_id.strip():
        problems.append("--account-id: the subject's account id on that platform, as the alerts give it")
    if not settings.env.pseudonym_key:
        problems.append("environment RESPONDER_PSEUDONYM_KEY: the key the pseudonyms were made with")
    if settings.keyring is None:
        problems.append("environment RESPONDER_DATA_KEYS: the data keys that seal the person's data")
    if problems:
        raise ConfigError(problems)
    key = Pseudonyms(settings.env.pseudonym_key).of(integration, account_id)
    assert key is not None
    return key


async def export(settings: Settings, integration: str, account_id: str, out: str, requested_by: str) -> int:
    subject = _subject_key(settings, integration, account_id)
    use_keyring(settings.keyring)
    db = Database(settings.env.database_url)
    try:
        found = await retention.subject_cases(db, subject)
        cases = [_case_export(*await load_case(db, case_id), platform) for case_id, *_, platform in found]
        document = {
            "subject": {"integration": integration, "account_id": account_id},
            "exported_at": _iso(utcnow()),
            "requested_by": requested_by,
            "cases": cases,
        }
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            print(f"responder: {out} exists: give a new file", file=sys.stderr)
            return 2
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(document, file, ensure_ascii=False, indent=2)
        ids = [case_id for case_id, *_ in found]
        await retention.audit_subject(
            db, requested_by, "subject_exported", utcnow(), ids, integration=integration, cases=len(ids)
        )
    finally:
        await db.close()
    print(f"wrote {len(cases)} case(s) of this subject to {out} (readable by you alone); audited")
    return 0


def _case_export(
    case: Any, events: list[Any], pages: list[Any], tasks: list[Any], _: Any, platform: str
) -> dict[str, Any]:
    written = [
        {
            "at": _iso(e.at),
            "by": e.actor,
            "type": e.type,
            **{k: e.detail[k] for k in ("text", "note") if k in e.detail},
        }
        for e in events
        if "text" in e.detail or "note" in e.detail
    ]
    return {
        "ref": case.ref,
        "platform": platform,
        "alert_id": case.alert_id,
        "status": case.status,
        "received_at": _iso(case.received_at),
        "resolved_at": _iso(case.resolved_at),
        "outcome": case.outcome,
        "alert": case.alert,
        "outcome_note": case.outcome_note,
        "written_by_staff": written,
        "pages": len(pages),
        "tasks_done": sum(1 for t in tasks if t.done_at is not None),
        "identity_redacted_at": _iso(case.identity_redacted_at),
        "notes_redacted_at": _iso(case.notes_redacted_at),
        "legal_hold": {"since": _iso(case.held_at), "by": case.held_by, "reason": case.hold_reason}
        if case.held_at
        else None,
    }


async def erase(settings: Settings, integration: str, account_id: str, requested_by: str) -> int:
    subject = _subject_key(settings, integration, account_id)
    use_keyring(settings.keyring)
    db = Database(settings.env.database_url)
    try:
        found = await retention.subject_cases(db, subject)
        now = utcnow()
        erasable = [case_id for case_id, status, _, held, _ in found if status == RESOLVED and not held]
        kept = [(case_id, status, held) for case_id, status, _, held, _ in found if case_id not in erasable]
        done = await retention.erase(db, erasable, now, requested_by)
        await retention.audit_subject(
            db,
            requested_by,
            "subject_erased",
            now,
            [],
            integration=integration,
            cases=len(found),
            erased=len(done),
            left_open=[c for c, status, held in kept if not held],
            left_on_hold=[c for c, _, held in kept if held],
        )
    finally:
        await db.close()
    print(f"erased {len(done)} case(s) of this subject (identity, notes and pseudonym); audited")
    for case_id, status, held in kept:
        why = (
            "on legal hold: lift the hold first" if held else f"{status}: resolve it first, then erase again"
        )
        print(f"left case {case_id}: {why}")
    return 1 if kept else 0
