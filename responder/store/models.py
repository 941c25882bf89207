"""Tables. The database is the source of truth: due times, page attempts and acceptances are rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlalchemy.orm import deferred
from sqlmodel import Field, SQLModel

from responder.store.sealed import SealedJSON, SealedText, TimelineDetail
from responder.store.types import UTCDateTime


def _utc(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


class Integration(SQLModel, table=True):
    """A platform allowed to post alerts (its secret lives in the environment, not here)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    created_at: datetime = _utc()


class Person(SQLModel, table=True):
    """A pageable person, mirrored from the roster in config/ at start-up."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    phone: str = Field(max_length=20)
    languages: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    regions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    updated_at: datetime = _utc()


# The person's data, sealed at rest (store/sealed.py): deferred, so that loading a case (the engine, an
# accept, the review) never opens it; only the case's own page and API ask for it (store/cases.py).
_ALERT: Column[Any] = Column("alert", SealedJSON("case.alert"), nullable=False)
_OUTCOME_NOTE: Column[Any] = Column("outcome_note", SealedText("case.outcome_note"), nullable=True)


class Case(SQLModel, table=True):
    """One alert being worked, with its escalation state (next step and when it is due)."""

    __mapper_args__ = {"properties": {"alert": deferred(_ALERT), "outcome_note": deferred(_OUTCOME_NOTE)}}

    __table_args__ = (
        UniqueConstraint("integration_id", "alert_id", name="uq_case_alert"),
        Index("ix_case_due", "status", "next_due_at"),
        Index("ix_case_retention", "status", "resolved_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    ref: str = Field(unique=True, max_length=16)
    integration_id: int = Field(foreign_key="integration.id")
    alert_id: str = Field(max_length=128)
    status: str = Field(max_length=16)  # open, acknowledged, resolved
    risk_level: str = Field(max_length=16)
    priority: int  # 0 is most urgent; due steps are taken in this order
    is_live: bool = False
    region: str | None = Field(default=None, max_length=16)
    language: str | None = Field(default=None, max_length=35)
    playbook: str = Field(max_length=64)
    # The subject's pseudonym: a keyed HMAC of (integration, account id), never the identity; cases of
    # the same person share it (intake/pseudonyms.py).
    subject_key: str | None = Field(default=None, index=True, max_length=64)
    # The person's data: sealed at rest (store/sealed.py); the routing facts above stay in clear.
    alert: dict[str, Any] = Field(default_factory=dict, sa_column=_ALERT)
    detected_at: datetime = _utc()
    received_at: datetime = _utc()
    chain_started_at: datetime = _utc()
    next_step: int = 0
    # Seconds the chain was pulled forward (a failed page or a pass acts at once, not at the timer).
    skew_s: float = 0.0
    next_due_at: datetime | None = _utc(default=None, nullable=True)
    # People who passed (SMS NO, key 2): the chain skips them until all-hands.
    declined: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    accepted_by: str | None = Field(default=None, foreign_key="person.id", max_length=64)
    accepted_at: datetime | None = _utc(default=None, nullable=True)
    accepted_via: str | None = Field(default=None, max_length=16)
    resolved_at: datetime | None = _utc(default=None, nullable=True)
    resolved_by: str | None = Field(default=None, max_length=64)
    outcome: str | None = Field(default=None, max_length=40)
    outcome_note: str | None = Field(default=None, sa_column=_OUTCOME_NOTE)
    # Case work (a task done, a note, the accept itself) resets the re-escalation clock.
    last_activity_at: datetime | None = _utc(default=None, nullable=True)
    quiet_stage: int = 0  # how many re-escalation nudges went out since the last activity
    # Recorded with the outcome (PRODUCT.md §5): flags and the times the case work reached each stage.
    services_dispatched: bool | None = None
    person_collaborated: bool | None = None
    identified_at: datetime | None = _utc(default=None, nullable=True)
    located_at: datetime | None = _utc(default=None, nullable=True)
    dispatched_at: datetime | None = _utc(default=None, nullable=True)
    contacted_at: datetime | None = _utc(default=None, nullable=True)
    # Retention (store/retention.py): when the person's identity and what staff wrote were redacted,
    # and a legal hold (by a manager, with its reason) that suspends both.
    identity_redacted_at: datetime | None = _utc(default=None, nullable=True)
    notes_redacted_at: datetime | None = _utc(default=None, nullable=True)
    held_at: datetime | None = _utc(default=None, nullable=True)
    held_by: str | None = Field(default=None, max_length=80)
    hold_reason: str | None = Field(default=None, sa_type=Text)


class CaseTask(SQLModel, table=True):
    """An investigation task from the playbook, due at an offset from receipt."""

    __tablename__ = "case_task"
    __table_args__ = (UniqueConstraint("case_id", "task", name="uq_case_task"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="case.id", index=True, max_length=36)
    task: str = Field(max_length=64)
    title: str = Field(max_length=200)
    role: str = Field(max_length=16)
    due_at: datetime = _utc()
    done_at: datetime | None = _utc(default=None, nullable=True)
    done_by: str | None = Field(default=None, max_length=80)
    overdue_at: datetime | None = _utc(default=None, nullable=True)  # when its overdue notice went out


class CaseEvent(SQLModel, table=True):
    """The append-only timeline of a case."""

    __tablename__ = "case_event"
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="case.id", index=True, max_length=36)
    at: datetime = _utc()
    type: str = Field(max_length=40)
    actor: str = Field(max_length=80)
    # What staff wrote (a note, an outcome's reason) is sealed inside it (store/sealed.py).
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(TimelineDetail(), nullable=False))


class Delivery(SQLModel, table=True):
    """A webhook delivery already taken in (idempotency of updates and retracts by webhook-id)."""

    __table_args__ = (UniqueConstraint("integration_id", "webhook_id", name="uq_delivery"),)
    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(foreign_key="integration.id")
    webhook_id: str = Field(max_length=128)
    case_id: str = Field(foreign_key="case.id", max_length=36)
    received_at: datetime = _utc()


class Page(SQLModel, table=True):
    """One message or call to one person: stored before it is sent, updated by Twilio's callbacks.

    `step` is the playbook step that made it (None for notices); (case, step, person, channel) is
    unique, so a step that runs twice after a crash cannot page twice.
    """

    __table_args__ = (
        UniqueConstraint("case_id", "step", "person_id", "channel", name="uq_page_step"),
        Index("ix_page_outbox", "status", "not_before"),
        Index("ix_page_person_sent", "person_id", "sent_at"),  # the per-phone flood limit counts here
    )

    id: str = Field(primary_key=True, max_length=32)
    # None for a notice about no case (a shift's hand-off SMS, a STOP from someone never paged).
    case_id: str | None = Field(default=None, foreign_key="case.id", index=True, max_length=36)
    person_id: str = Field(foreign_key="person.id", max_length=64)
    channel: str = Field(max_length=8)  # sms, voice
    purpose: str = Field(max_length=16)  # page, notice
    step: int | None = None
    tier: str | None = Field(default=None, max_length=64)
    body: str = Field(default="", max_length=1600)
    # Ours: a domain.PageState, moved only along domain.PAGE_MOVES.
    status: str = Field(max_length=16)
    # Twilio's own word for it, raw (queued, ringing, no-answer...); it only ever moves forward.
    twilio_status: str | None = Field(default=None, max_length=32)
    twilio_sid: str | None = Field(default=None, index=True, max_length=64)
    error_code: int | None = None
    error_message: str | None = Field(default=None, max_length=400)
    answered_by: str | None = Field(default=None, max_length=32)
    attempts: int = 0
    last_sequence: int = -1
    created_at: datetime = _utc()
    not_before: datetime = _utc()
    claimed_at: datetime | None = _utc(default=None, nullable=True)
    sent_at: datetime | None = _utc(default=None, nullable=True)
    updated_at: datetime = _utc()
    link_used_at: datetime | None = _utc(default=None, nullable=True)
    # What became of the page, for the review: "failed" (paging/failures.py says when) or "cancelled"
    # (an accept came before it was sent); None while it went out and did not fail.
    outcome: str | None = Field(default=None, max_length=16)
    # Other pages this one's SMS carried (one message naming several cases, over the flood limit).
    carried_by: str | None = Field(default=None, max_length=32)
    # The outbox (one per process) that claimed it; its claim stands while that outbox's lease does.
    claimed_by: str | None = Field(default=None, max_length=32)


class ScheduleOverride(SQLModel, table=True):
    """An override made through the API: `person` holds a layer of a schedule for [start_at, end_at)."""

    __tablename__ = "schedule_override"
    id: str = Field(primary_key=True, max_length=36)
    schedule_id: str = Field(index=True, max_length=64)
    layer: str = Field(max_length=64)
    person_id: str = Field(max_length=64)
    replaces: str | None = Field(default=None, max_length=64)
    start_at: datetime = _utc()
    end_at: datetime = _utc()
    reason: str = Field(default="", max_length=500)
    created_by: str = Field(max_length=80)
    created_at: datetime = _utc()
    cancelled_at: datetime | None = _utc(default=None, nullable=True)
    cancelled_by: str | None = Field(default=None, max_length=80)


class ScheduleEvent(SQLModel, table=True):
    """The append-only timeline of a schedule: who changed what, when (the audit of admin changes)."""

    __tablename__ = "schedule_event"
    id: int | None = Field(default=None, primary_key=True)
    schedule_id: str = Field(index=True, max_length=64)
    at: datetime = _utc()
    type: str = Field(max_length=40)
    actor: str = Field(max_length=80)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class HandoffNotice(SQLModel, table=True):
    """A hand-off SMS claimed for one turn (at most one per turn, whichever replica sees it first)."""

    __tablename__ = "handoff_notice"
    schedule_id: str = Field(primary_key=True, max_length=64)
    layer: str = Field(primary_key=True, max_length=64)
    start_at: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    person_id: str = Field(max_length=64)
    created_at: datetime = _utc()


class ContactFlag(SQLModel, table=True):
    """A channel of a person that cannot be used: SMS opted out (STOP, 21610), not a mobile (21614),
    a landline (30006); or `all` when the number itself is refused (21211, 30005)."""

    __tablename__ = "contact_flag"
    person_id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(primary_key=True, max_length=8)  # sms, voice, all
    reason: str = Field(max_length=40)
    error_code: int | None = None
    since: datetime = _utc()
    actor: str = Field(max_length=80)


class User(SQLModel, table=True):
    """A login for the web pages, linked to a roster person for negotiators and investigators."""

    __tablename__ = "app_user"
    id: str = Field(primary_key=True, max_length=32)
    username: str = Field(unique=True, max_length=64)
    person_id: str | None = Field(default=None, foreign_key="person.id", max_length=64)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    password_hash: str = Field(max_length=256)
    active: bool = True
    created_at: datetime = _utc()
    # Set by an admin's password reset: every page leads to /account/password until a new one is set.
    must_change_password: bool = False


class WebSession(SQLModel, table=True):
    """A logged-in browser: the cookie carries the token, the table its hash and the CSRF token."""

    __tablename__ = "web_session"
    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(foreign_key="app_user.id", index=True, max_length=32)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = _utc()
    expires_at: datetime = _utc()


class ApiToken(SQLModel, table=True):
    """A bearer token for integrations and automation, stored hashed, scoped by role."""

    __tablename__ = "api_token"
    token_hash: str = Field(primary_key=True, max_length=64)
    name: str = Field(unique=True, max_length=64)
    role: str = Field(max_length=16)
    created_at: datetime = _utc()
    revoked_at: datetime | None = _utc(default=None, nullable=True)
    # The user it acts for, if any: it works only while they are active and hold its role.
    user_id: str | None = Field(default=None, foreign_key="app_user.id", index=True, max_length=32)
    last_used_at: datetime | None = _utc(default=None, nullable=True)  # to the minute (TOKEN_USE_STEP)


class AuditEvent(SQLModel, table=True):
    """Who saw or did what: every view of a case's personal data and every refusal. Append-only (a
    database trigger refuses UPDATE and DELETE on both SQLite and PostgreSQL)."""

    __tablename__ = "audit_event"
    __table_args__ = (  # /audit filters by actor, kind and period, newest first
        Index("ix_audit_event_actor_id", "actor", "id"),
        Index("ix_audit_event_action_id", "action", "id"),
        Index("ix_audit_event_at", "at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc()
    actor: str = Field(max_length=80)
    action: str = Field(max_length=40)
    case_id: str | None = Field(default=None, index=True, max_length=36)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class LoginLimit(SQLModel, table=True):
    """Login attempts of one key (a username, a client address, a known device) in its current window,
    shared by every replica. `attempts` holds failures and checks in progress (a success gives its
    back); `refused` counts the attempts refused while the key was locked (one audit row per burst)."""

    __tablename__ = "login_limit"
    key: str = Field(primary_key=True, max_length=200)
    window_started_at: datetime = _utc(index=True)
    attempts: int = 0
    refused: int = 0
    first_refused_at: datetime | None = _utc(default=None, nullable=True)
    last_refused_at: datetime | None = _utc(default=None, nullable=True)


class LoginDevice(SQLModel, table=True):
    """A browser that logged in as this user before: its cookie carries the token, the table its hash."""

    __tablename__ = "login_device"
    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(foreign_key="app_user.id", index=True, max_length=32)
    created_at: datetime = _utc()
    expires_at: datetime = _utc()


class TwilioInbound(SQLModel, table=True):
    """An inbound Twilio request already acted on (an SMS by MessageSid, a key press by call, menu
    step and digits): a replay of a captured request finds its row and changes nothing."""

    __tablename__ = "twilio_inbound"
    key: str = Field(primary_key=True, max_length=200)
    received_at: datetime = _utc()


class PhoneLimitNotice(SQLModel, table=True):
    """When a person's phone last reached the flood limit: the manager is told once per window."""

    __tablename__ = "phone_limit_notice"
    person_id: str = Field(primary_key=True, max_length=64)
    reached_at: datetime = _utc()


class OutboxLease(SQLModel, table=True):
    """A running outbox, alive until `expires_at` (it renews the lease while it runs): its claimed
    pages are in flight, never to be sent again by another; once the lease runs out they are orphans."""

    __tablename__ = "outbox_lease"
    owner: str = Field(primary_key=True, max_length=32)
    expires_at: datetime = _utc()


class IcalFeed(SQLModel, table=True):
    """A calendar feed revoked at least once: its generation goes into the key of its URL, so a
    revocation (generation + 1) kills the old URL alone. A feed without a row is at generation 0."""

    __tablename__ = "ical_feed"
    kind: str = Field(primary_key=True, max_length=16)  # schedules or people, as in the URL
    ident: str = Field(primary_key=True, max_length=64)
    generation: int = 0
    revoked_at: datetime | None = _utc(default=None, nullable=True)
