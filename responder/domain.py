"""The service's vocabulary in one place: case statuses, page states, roles and channels.

Every module that needs one of these names imports it from here; settings, the store and the
handlers hold none of their own.
"""

from __future__ import annotations

from typing import Literal

# A case: paging (open), someone has it (acknowledged), closed with an outcome (resolved).
OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
CASE_STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)

# Page states from which the outbox still has to act (the rest are Twilio's news, paging/status.py).
PENDING, CLAIMED = "pending", "claimed"

# Who a roster person is on call as (schedules and playbooks page these).
Role = Literal["investigator", "negotiator", "team_lead", "manager", "admin"]
ROSTER_ROLES: tuple[Role, ...] = ("investigator", "negotiator", "team_lead", "manager", "admin")
# What an account may do on the web pages and the API (an auditor is never paged).
ACCOUNT_ROLES = ("negotiator", "investigator", "team_lead", "manager", "admin", "auditor")
ADMIN, AUDITOR = "admin", "auditor"
# Who is paged, and so may be paged for a case or hold one: an account with one of these roles must be
# linked to its roster person, which is how the cases paged to it are known.
PAGED_ROLES = ("negotiator", "investigator")
# Who sees and works every case (on the pages and through the case API).
LEADS = ("team_lead", "manager")
# Who reads the outcome review: the monthly report, CSV export, the review API (team leads also see
# the dashboard, which lists the cases they work).
REVIEWERS = ("manager", AUDITOR)
# Who reads schedules and who is on call through the API.
SCHEDULE_READERS = (ADMIN, "manager", "team_lead")

Channel = Literal["sms", "voice"]
CHANNELS: tuple[Channel, ...] = ("sms", "voice")
