"""Typed application state (aiohttp AppKeys), one per long-lived service object."""

from __future__ import annotations

from aiohttp import web

from responder.clock import Clock
from responder.engine.commands import CaseCommands
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
ROSTER = web.AppKey("roster", Roster)
ENGINE = web.AppKey("engine", Engine)
# What handlers call to change a case (they never drive the engine themselves).
COMMANDS = web.AppKey("commands", CaseCommands)
INTAKE = web.AppKey("intake", Intake)
VERIFIER = web.AppKey("verifier", SignatureVerifier)
TWILIO_CHECKER = web.AppKey("twilio_checker", SignatureChecker)
LINKS = web.AppKey("links", LinkSigner)
