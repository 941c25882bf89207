"""Typed application state (aiohttp AppKeys) of the phone simulator, an app of its own: its keys live
here, as the service's live in api/keys.py (lint/import_rules.py: AppKeysContract)."""

from __future__ import annotations

from aiohttp import web

from responder.simulator.switchboard import Switchboard

SWITCHBOARD = web.AppKey("switchboard", Switchboard)
# The control page's HTML, read once at start-up.
PAGE = web.AppKey("page", str)
