"""The `responder` command: serve, check, db, demo, simulator, simulate-alert, playbook explain,
oncall (who, gaps, feeds), ical (url, revoke), users (add, list, disable, enable, roles,
reset-password), tokens (create, list, revoke)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from responder.domain import ROSTER_ROLES
from responder.errors import ConfigError
from responder.logging import configure_logging
from responder.secret_checks import insecure_public_url
from responder.settings import Settings


def _days(value: str) -> float:
    days = float(value)
    if not 0 < days <= 366:
        raise argparse.ArgumentTypeError("give a number of days above 0 and at most 366")
    return days


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="responder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    sub.add_parser("check", help="validate the config file and playbooks; non-zero on any error")
    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade", "current"])
    backup = sub.add_parser("backup", help="a consistent copy of the database, while it runs (SQLite)")
    backup.add_argument("path", help="a new file (written 0600; PostgreSQL: prints the pg_dump line)")
    keys = sub.add_parser("keys", help="the data keys that seal the person's data (RESPONDER_DATA_KEYS)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new_key = keys_sub.add_parser("new", help="print a new keyring entry (id:base64key)")
    new_key.add_argument("--id", default=None, help="the key's id (default: k<date>)")
    rotate = keys_sub.add_parser("rotate", help="re-seal every stored value under the first key")
    rotate.add_argument("--batch", type=int, default=200, help="rows per transaction (default 200)")
    rotate.add_argument(
        "--max-rows", type=int, default=None, help="stop after this many (run again to go on)"
    )
    subject = sub.add_parser(
        "subject", help="a subject request: what is held about one person, or its erasure"
    )
    subject_sub = subject.add_subparsers(dest="subject_command", required=True)
    for action, about in (
        ("export", "write what the service holds about the person (decrypted) to a new file"),
        ("erase", "redact the person's identity and notes in every resolved case now"),
    ):
        request = subject_sub.add_parser(action, help=about)
        request.add_argument("--integration", required=True, help="the platform, as named in the config")
        request.add_argument("--account-id", required=True, help="their account id on that platform")
        request.add_argument(
            "--requested-by", required=True, help="who asks, for the audit (e.g. dpo:ticket-4411)"
        )
        if action == "export":
            request.add_argument("--out", required=True, help="a new file (written 0600)")
    alert = sub.add_parser("simulate-alert", help="post a signed sample alert to a running service")
    alert.add_argument("file", help="alert JSON, e.g. tests/samples/imminent-live-fr.json")
    alert.add_argument("--url", default=None, help="service base URL (default: RESPONDER_PUBLIC_URL)")
    alert.add_argument("--integration", default=None, help="integration name (default: the first one)")
    alert.add_argument("--alert-id", default=None, help="override alert_id (to post a sample again as new)")
    playbook = sub.add_parser("playbook", help="playbook tools")
    playbook_sub = playbook.add_subparsers(dest="playbook_command", required=True)
    explain = playbook_sub.add_parser("explain", help="dry run: what happens when, if nobody answers")
    explain.add_argument("file", help="playbook YAML, e.g. playbooks/imminent-risk.yaml")
    explain.add_argument("--alert", default=None, help="alert JSON whose region routes the pages")
    explain.add_argument("--region", default=None, help="region when no alert is given (default: *)")
    explain.add_argument("--accept-at", default=None, help="an accept at this offset, e.g. 4m: what stops")
    demo = sub.add_parser("demo", help="service + phone simulator + a sample alert, live")
    demo.add_argument("--scripted", action="store_true", help="a phone accepts after the second page; exit 0")
    demo.add_argument("--alert", default=None, help="alert JSON to post")
    sub.add_parser("simulator", help="run the phone simulator alone (its own options: simulator --help)")
    oncall = sub.add_parser("oncall", help="who is on call, gaps in the schedules, calendar feeds")
    oncall_sub = oncall.add_subparsers(dest="oncall_command", required=True)
    who = oncall_sub.add_parser("who", help="who, in order, for a role in a region at a time")
    who.add_argument("--role", required=True, choices=ROSTER_ROLES)
    who.add_argument("--region", default=None, help="ISO 3166-2 code such as FR-75 (default: *)")
    who.add_argument(
        "--at", action="append", default=None, help="ISO 8601 time with a zone (default: now); repeatable"
    )
    who.add_argument("--language", default=None, help="the alert's language, for schedules that prefer it")
    gaps = oncall_sub.add_parser("gaps", help="every hour where a role in a region has nobody; exit 1 if any")
    gaps.add_argument("--days", type=_days, default=14.0, help="how far ahead (0 < days <= 366)")
    gaps.add_argument("--from", dest="start", default=None, help="ISO 8601 start (default: now)")
    for command in (who, gaps):
        command.add_argument("--json", action="store_true", help="machine-readable output")
        command.add_argument("--no-db", action="store_true", help="files only: leave out API overrides")
    oncall_sub.add_parser("feeds", help="the secret iCal feed URLs per schedule and per person")
    ical = sub.add_parser("ical", help="one calendar feed: its secret URL, or revoke it")
    ical_sub = ical.add_subparsers(dest="ical_command", required=True)
    for action, about in (("url", "print its current URL"), ("revoke", "revoke its URL, print the new")):
        feed = ical_sub.add_parser(action, help=about)
        feed.add_argument("kind", choices=["schedule", "person"])
        feed.add_argument("id", help="the schedule's or the person's id")
    from responder.accounts.cli import add_parsers as add_account_parsers

    add_account_parsers(sub)  # users ..., tokens ...
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulator"]:
        from responder.simulator.__main__ import main as simulator_main

        return simulator_main(argv[1:]) or 0
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"responder: {exc.heading}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2


def _standalone(args: argparse.Namespace) -> int | None:
    """The commands that load the settings their own way, or none."""
    if args.command == "playbook":
        from responder.tools import explain_playbook

        return explain_playbook(args.file, args.alert, args.region, args.accept_at)
    if args.command == "keys":
        return _keys(args)
    if args.command == "backup":
        from responder.settings import load_settings
        from responder.store.backup import run as run_backup

        return run_backup(load_settings(require_secrets=False).env.database_url, args.path)
    if args.command == "demo":
        from responder.demo import run_demo

        return asyncio.run(run_demo(scripted=args.scripted, alert_path=args.alert))
    return None


def _run(args: argparse.Namespace) -> int:
    from responder.settings import load_settings

    if (done := _standalone(args)) is not None:
        return done
    settings = load_settings(
        require_secrets=args.command not in ("check", "db", "oncall", "ical", "users", "tokens", "subject")
    )
    configure_logging(settings.env.log_format, settings.env.log_level)
    if args.command == "check":
        return _check(settings)
    if args.command in ("users", "tokens"):
        from responder.accounts.cli import run as run_accounts

        return run_accounts(settings, args)
    if args.command == "oncall":
        from responder.oncall import cli as oncall

        if args.oncall_command == "who":
            return oncall.who(
                settings, args.role, args.region, args.at, args.language, args.json, not args.no_db
            )
        if args.oncall_command == "gaps":
            return oncall.gap_report(settings, args.days, args.start, args.json, not args.no_db)
        from responder.oncall.ical_cli import feeds

        return feeds(settings)
    if args.command == "ical":
        from responder.oncall import ical_cli

        command = ical_cli.url if args.ical_command == "url" else ical_cli.revoke
        return command(settings, args.kind, args.id)
    if args.command == "db":
        return asyncio.run(_db(settings.env.database_url, args.action))
    if args.command == "subject":
        from responder.subjects import run as run_subject

        return run_subject(settings, args)
    if args.command == "simulate-alert":
        from responder.tools import simulate_alert

        return asyncio.run(simulate_alert(settings, args.file, args.url, args.integration, args.alert_id))
    from responder.serve import serve

    asyncio.run(serve(settings, args.host, args.port))
    return 0


def _check(settings: object) -> int:
    from responder.app import check_playbooks
    from responder.engine.playbook import load_playbooks
    from responder.oncall.config import load_roster
    from responder.settings import Settings

    assert isinstance(settings, Settings)
    problems: list[str] = []
    playbooks, roster = [], None
    for load in (lambda: load_playbooks(settings.env.playbooks_dir), lambda: load_roster(settings)):
        try:
            loaded = load()
        except ConfigError as exc:
            problems += exc.problems
            continue
        if isinstance(loaded, list):
            playbooks = loaded
        else:
            roster = loaded
    if roster is not None and playbooks:
        problems += check_playbooks(roster, playbooks)
    if problems or roster is None:
        raise ConfigError(problems)
    people, names = len(settings.config.people), ", ".join(p.name for p in playbooks)
    for line in _warnings(settings):
        print(line, file=sys.stderr)
    print(
        f"ok: {settings.env.config_path} ({people} people), {len(roster.schedules)} schedules in"
        f" {settings.schedules_dir}, playbooks: {names}"
    )
    return 0


def _warnings(settings: Settings) -> list[str]:
    """What `check` passes but `serve` refuses, or what is risky or off in production."""
    lines = [f"warning: {w} (needed by `responder serve`)" for w in settings.missing_secrets]
    lines += [f"warning: {w} (refused by `responder serve`)" for w in settings.weak_secrets]
    why = insecure_public_url(settings.env.public_url)
    if why:
        lines.append(f"warning: environment RESPONDER_PUBLIC_URL: {why}")
    if not settings.env.ical_secret:
        lines.append("note: RESPONDER_ICAL_SECRET is not set: the calendar feeds are off (404)")
    return lines


def _keys(args: argparse.Namespace) -> int:
    from responder.clock import utcnow
    from responder.settings import load_settings
    from responder.store.sealed import new_key_entry

    if args.keys_command == "new":
        print(new_key_entry(args.id or f"k{utcnow():%Y%m%d}"))
        return 0
    settings = load_settings(require_secrets=False)  # the data keys only: checked here
    configure_logging(settings.env.log_format, settings.env.log_level)
    if settings.keyring is None:
        why = [w for w in (*settings.missing_secrets, *settings.weak_secrets) if "RESPONDER_DATA_KEYS" in w]
        raise ConfigError(why)
    return asyncio.run(_rotate(settings, args.batch, args.max_rows))


async def _rotate(settings: Settings, batch: int, max_rows: int | None) -> int:
    from responder.store.db import Database
    from responder.store.rekey import rotate

    if batch < 1 or (max_rows is not None and max_rows < 1):
        print("responder: --batch and --max-rows must be at least 1", file=sys.stderr)
        return 2
    assert settings.keyring is not None  # _keys refuses to go on without it
    db = Database(settings.env.database_url)
    try:
        done = await rotate(db, settings.keyring, batch, max_rows)
    finally:
        await db.close()
    left = "; more to do: run it again" if done.left else "; every value is under it"
    print(f"re-sealed {done.resealed} values under key {settings.keyring.current}{left}")
    return 0


async def _db(url: str, action: str) -> int:
    from responder.store.db import Database
    from responder.store.migrate import current_revision, head_revision, upgrade

    db = Database(url)
    try:
        if action == "upgrade":
            await upgrade(db)
        print(f"schema revision {await current_revision(db)} (latest {head_revision()})")
    finally:
        await db.close()
    return 0
