"""Typed application state (aiohttp AppKeys) of the service, all of them: one per long-lived service
object. A key is made nowhere else (lint/import_rules.py: AppKeysContract), so this file is the list of
what the app holds; the phone simulator, an app of its own, keeps its keys in simulator/keys.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiohttp import web

from responder.clock import Clock
from responder.engine.commands import CaseCommands
from responder.engine.playbook import Playbook
from responder.engine.runner import Engine
from responder.intake.service import Intake
from responder.intake.signatures import SignatureVerifier
from responder.oncall.roster import Roster
from responder.paging.links import LinkSigner
from responder.paging.twilio_client import SignatureChecker
from responder.settings import Settings
from responder.store.db import Database

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
DB = web.AppKey("db", Database)
PLAYBOOKS = web.AppKey("playbooks", Sequence[Playbook])
ROSTER = web.AppKey("roster", Roster)
ENGINE = web.AppKey("engine", Engine)
# What handlers call to change a case (they never drive the engine themselves).
COMMANDS = web.AppKey("commands", CaseCommands)
INTAKE = web.AppKey("intake", Intake)
VERIFIER = web.AppKey("verifier", SignatureVerifier)
TWILIO_CHECKER = web.AppKey("twilio_checker", SignatureChecker)
LINKS = web.AppKey("links", LinkSigner)
# The key of the calendar feeds' secret URLs; empty: the feeds are off (404).
ICAL_SECRET = web.AppKey("ical_secret", str)
# Set at shutdown: every live timeline (web/cases.py) ends by itself.
STREAMS_CLOSING = web.AppKey("streams_closing", asyncio.Event)
# How many logins check a password at once (accounts/logins.py: LOGINS_AT_ONCE).
LOGIN_GATE = web.AppKey("login_gate", asyncio.Semaphore)
