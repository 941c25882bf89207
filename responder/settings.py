"""One validated settings object, built at start-up from the environment and the config file.

Secrets come from the environment only; the config file names the variables that hold them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from responder.domain import OUTCOMES, Role
from responder.durations import DurationS
from responder.errors import ConfigError
from responder.secret_checks import short_secret, weak_webhook_secret
from responder.store.retention import Rules
from responder.store.sealed import Keyring, KeyringError
from responder.yamlfile import PathKey, load_yaml, validate_doc

DEFAULT_REGION = "*"
_REGION = re.compile(r"^(\*|[A-Z]{2}(-[A-Z0-9]{1,3})?)$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class EnvSettings(BaseSettings):
    """What the environment says (PRODUCT.md §6)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    config_path: Path = Field(Path("config/responder.yaml"), validation_alias="RESPONDER_CONFIG")
    database_url: str = Field(
        "sqlite+aiosqlite:///var/responder.db", validation_alias="RESPONDER_DATABASE_URL"
    )
    public_url: str = Field("http://127.0.0.1:8080", validation_alias="RESPONDER_PUBLIC_URL")
    # Reverse proxies whose X-Forwarded-For names the client (comma-separated addresses or networks).
    # Empty: the client is the peer of the connection, and X-Forwarded-For is ignored.
    # (NoDecode: the variable is a plain list, not the JSON pydantic-settings expects for a tuple.)
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        (), validation_alias="RESPONDER_TRUSTED_PROXIES"
    )
    twilio_account_sid: str = Field("", validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str = Field("", validation_alias="TWILIO_AUTH_TOKEN", repr=False)
    # During a rotation of the auth token: callbacks signed with this one are accepted too.
    twilio_secondary_auth_token: str = Field("", validation_alias="TWILIO_SECONDARY_AUTH_TOKEN", repr=False)
    twilio_from: str = Field("", validation_alias="RESPONDER_TWILIO_FROM")
    twilio_api_base: str = Field("https://api.twilio.com", validation_alias="RESPONDER_TWILIO_API_BASE")
    # A request to Twilio taking longer is abandoned and retried; a claim twice this old with no answer
    # recorded (its process died mid-send) is sent again.
    twilio_timeout_s: float = Field(10.0, gt=0, le=120, validation_alias="RESPONDER_TWILIO_TIMEOUT_S")
    # Every database statement, wait for a connection or lock, and intake request as a whole must end
    # within this; past it the answer is 503 with Retry-After (never a 2xx for an alert not stored).
    db_deadline_s: float = Field(5.0, gt=0, le=60, validation_alias="RESPONDER_DB_DEADLINE_S")
    # On SIGTERM: how long the sends already in flight to Twilio may take to finish and be recorded
    # (their callbacks still taken meanwhile) before the service goes. A send cut short here is sent
    # again after the restart, so keep it above the Twilio timeout; systemd's TimeoutStopSec above it.
    stop_grace_s: float = Field(15.0, gt=0, le=600, validation_alias="RESPONDER_STOP_GRACE_S")
    # Twilio failing for longer than this is an outage the on-call managers are told about.
    twilio_outage_notice_s: float = Field(
        60.0, gt=0, le=3600, validation_alias="RESPONDER_TWILIO_OUTAGE_NOTICE_S"
    )
    # The holder of a case keeps its personal fields this long after it is resolved, then sees a stub;
    # team leads, managers and auditors then read it only with a reason (break-glass, audited).
    holder_access_after_resolve_h: float = Field(
        72.0, ge=0, le=24 * 365, validation_alias="RESPONDER_HOLDER_ACCESS_AFTER_RESOLVE_H"
    )
    api_token: str = Field("", validation_alias="RESPONDER_API_TOKEN", repr=False)
    # The keyring that seals the person's data at rest (store/sealed.py): id:base64key, ... (the first
    # seals, all open). `serve` refuses to start without it.
    data_keys: str = Field("", validation_alias="RESPONDER_DATA_KEYS", repr=False)
    # Keys the subjects' pseudonyms (intake/pseudonyms.py): a key of its own. Changing it breaks the
    # links between a person's earlier cases and later ones.
    pseudonym_key: str = Field("", validation_alias="RESPONDER_PSEUDONYM_KEY", repr=False)
    link_secret: str = Field("", validation_alias="RESPONDER_LINK_SECRET", repr=False)
    # Keys the calendar feed URLs; its own secret, so feed URLs and accept links never share a key.
    # Empty: the feeds are off (404).
    ical_secret: str = Field("", validation_alias="RESPONDER_ICAL_SECRET", repr=False)
    playbooks_dir: Path = Field(Path("playbooks"), validation_alias="RESPONDER_PLAYBOOKS_DIR")
    # One schedule per file; by default the schedules/ folder next to the config file.
    schedules_dir: Path | None = Field(None, validation_alias="RESPONDER_SCHEDULES_DIR")
    # Below 1, the case timeline runs on a scaled clock (responder/clock.py:ScaledClock): 0.05 makes
    # a minute of case time last 3 s. For demos and tests only; 1 is the system clock.
    time_scale: float = Field(1.0, gt=0, le=1, validation_alias="RESPONDER_TIME_SCALE")
    # Where a scaled clock starts (it reads this time at this wall instant): processes that must agree
    # on case time (replicas, a restart) share it. Unset: when the process starts.
    time_scale_start: AwareDatetime | None = Field(None, validation_alias="RESPONDER_TIME_SCALE_START")
    # The safety sweep: how often every process re-reads the earliest due time from the database. Due
    # steps are woken by exact timers; the sweep bounds how long a replica takes over the work of one
    # that died (its wake-ups died with it).
    sweep_interval_s: float = Field(5.0, gt=0, le=300, validation_alias="RESPONDER_SWEEP_INTERVAL_S")
    # A page Twilio took but has not reported on for this long is fetched from Twilio's API.
    reconcile_after_s: float = Field(60.0, gt=0, le=3600, validation_alias="RESPONDER_RECONCILE_AFTER_S")
    # Per-phone flood protection: over this many pages and notices to one person in the window, the
    # phone gets one SMS (naming every waiting case) and one call per hold; nothing is ever dropped.
    # 0 turns it off.
    phone_limit: int = Field(30, ge=0, le=10000, validation_alias="RESPONDER_PHONE_LIMIT")
    phone_limit_window_s: float = Field(
        600.0, gt=0, le=86400, validation_alias="RESPONDER_PHONE_LIMIT_WINDOW_S"
    )
    phone_limit_hold_s: float = Field(10.0, gt=0, le=300, validation_alias="RESPONDER_PHONE_LIMIT_HOLD_S")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", validation_alias=AliasChoices("RESPONDER_LOG_FORMAT")
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", validation_alias="RESPONDER_LOG_LEVEL"
    )

    @field_validator("public_url", "twilio_api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        networks = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            try:
                networks.append(ip_network(part))
            except ValueError:
                raise ValueError(
                    f"{part!r} is not an IP address or network: list them like 10.0.0.5,10.1.0.0/16"
                ) from None
        return tuple(networks)

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return value


class IntegrationConfig(BaseModel):
    """A platform that posts alerts; its Standard Webhooks secret sits in the named variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    secret_env: str

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("must be an environment variable name like RESPONDER_SECRET_SOCIAL")
        return value


def check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Paris)") from exc
    return value


def check_regions(value: tuple[str, ...]) -> tuple[str, ...]:
    for region in value:
        if not _REGION.match(region):
            raise ValueError(f"{region!r} is not an ISO 3166-2 code (FR-75), a country (FR) or '*'")
    return value


def _e164(value: str) -> str:
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not an E.164 phone number: write it as +<country code><number>") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError("not a possible phone number")
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if formatted != value:
        raise ValueError(f"write it in E.164 form: {formatted}")
    return value


class PersonConfig(BaseModel):
    """Someone who can be paged."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str = Field(min_length=1, max_length=200)
    phone: str  # the number pages go to first
    alt_phones: tuple[str, ...] = ()  # more numbers of theirs: replies from these count as theirs
    channels: tuple[Literal["sms", "voice"], ...] = ("sms", "voice")  # preferred order
    languages: tuple[str, ...] = ("en",)
    roles: tuple[Role, ...]
    regions: tuple[str, ...] = (DEFAULT_REGION,)
    time_zone: str = "UTC"
    active: bool = True

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return _e164(value)

    @field_validator("alt_phones")
    @classmethod
    def _phones(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_e164(v) for v in value)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_time_zone(value)

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list sms and/or voice, each once")
        return value

    @field_validator("roles")
    @classmethod
    def _some_role(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one role")
        return value

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_regions(value)

    @property
    def numbers(self) -> tuple[str, ...]:
        return (self.phone, *self.alt_phones)


_DAY_S = 86400.0
# The person's data is kept at least an hour after the resolution (an outcome may still be corrected)
# and at most ten years.
_KEPT_MIN_S, _KEPT_MAX_S = 3600.0, 3650 * _DAY_S


def _kept(value: float | None) -> float | None:
    if value is not None and not _KEPT_MIN_S <= value <= _KEPT_MAX_S:
        raise ValueError("keep it from 1h to 3650d after the resolution")
    return value


class RetentionPeriods(BaseModel):
    """How long after a case is resolved its person's data is kept (docs/privacy.md): `identity` is the
    alert's subject, content, location hints and platform contact; `notes` what staff wrote."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    identity: DurationS | None = None
    notes: DurationS | None = None

    @field_validator("identity", "notes")
    @classmethod
    def _period(cls, value: float | None) -> float | None:
        return _kept(value)


class RetentionConfig(BaseModel):
    """`retention:` of the config file: the defaults, and the outcomes kept for less (or more)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    identity: DurationS = 30 * _DAY_S
    notes: DurationS = 90 * _DAY_S
    outcomes: dict[str, RetentionPeriods] = Field(
        default_factory=lambda: {
            "false_positive": RetentionPeriods(identity=7 * _DAY_S, notes=7 * _DAY_S),
            "duplicate": RetentionPeriods(identity=7 * _DAY_S, notes=7 * _DAY_S),
        }
    )

    @field_validator("identity", "notes")
    @classmethod
    def _period(cls, value: float) -> float:
        return _kept(value) or value

    @field_validator("outcomes")
    @classmethod
    def _known(cls, value: dict[str, RetentionPeriods]) -> dict[str, RetentionPeriods]:
        unknown = sorted(set(value) - set(OUTCOMES))
        if unknown:
            raise ValueError(f"unknown outcome {unknown[0]!r} (one of {', '.join(OUTCOMES)})")
        return value

    def periods(self, outcome: str | None) -> tuple[float, float]:
        """Seconds the identity and the notes of a case with this outcome are kept after resolution."""
        rule = self.outcomes.get(outcome or "")
        identity = rule.identity if rule is not None and rule.identity is not None else self.identity
        notes = rule.notes if rule is not None and rule.notes is not None else self.notes
        return identity, notes

    def rules(self) -> Rules:
        return Rules((self.identity, self.notes), {o: self.periods(o) for o in self.outcomes})


class ConfigFile(BaseModel):
    """The file in config/: integrations and people (schedules sit in config/schedules/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    programme: str = "responder"
    integrations: tuple[IntegrationConfig, ...] = Field(min_length=1)
    people: tuple[PersonConfig, ...] = Field(min_length=1)
    # Paged, with a notice to the on-call manager, when a tier finds nobody on call anywhere up the
    # region chain: a case never waits for a schedule to start.
    default_team: tuple[str, ...] = ()
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with; built once by load_settings()."""

    env: EnvSettings
    config: ConfigFile
    webhook_secrets: Mapping[str, str]
    keyring: Keyring | None = None  # None only when loaded without require_secrets
    missing_secrets: tuple[str, ...] = ()  # only when loaded without require_secrets
    weak_secrets: tuple[str, ...] = ()  # too short to keep guessing out; likewise

    def person(self, person_id: str) -> PersonConfig | None:
        return next((p for p in self.config.people if p.id == person_id), None)

    @property
    def schedules_dir(self) -> Path:
        return self.env.schedules_dir or self.env.config_path.parent / "schedules"


def load_settings(environ: Mapping[str, str] | None = None, require_secrets: bool = True) -> Settings:
    """Build and validate the settings; every problem is reported with its field path.

    `require_secrets=False` (for `check` and `db`) lists missing integration secrets in
    `Settings.missing_secrets`, and secrets too short in `Settings.weak_secrets`, instead of
    refusing: they belong to where the service runs.
    """
    environ = os.environ if environ is None else environ
    env = _load_env(environ)
    doc = load_yaml(env.config_path)
    config = validate_doc(doc, ConfigFile)
    problems = _cross_check(config, doc.filename, doc.line_of)
    secrets: dict[str, str] = {}
    missing: list[str] = []
    for index, integration in enumerate(config.integrations):
        secret = environ.get(integration.secret_env, "")
        if not secret.startswith("whsec_"):
            line = doc.line_of(("integrations", index, "secret_env"))
            missing.append(
                f"{doc.filename}:{line}: integrations[{index}].secret_env: environment variable "
                f"{integration.secret_env} must hold the integration's secret (whsec_...)"
            )
        secrets[integration.name] = secret
    weak = _weak_secrets(env, config, environ, doc.filename, doc.line_of)
    keyring: Keyring | None = None
    if not env.pseudonym_key:
        missing.append(
            "environment RESPONDER_PSEUDONYM_KEY must hold the key of the subjects' pseudonyms "
            "(make one with `openssl rand -base64 32`)"
        )
    if not env.data_keys:
        missing.append(
            "environment RESPONDER_DATA_KEYS must hold the data keys that seal the person's data "
            "(`responder keys new` prints one)"
        )
    else:
        try:
            keyring = Keyring.parse(env.data_keys)
        except KeyringError as exc:
            weak.append(f"environment {exc}")
    refused = missing + weak if require_secrets else []
    if problems or refused:
        raise ConfigError(problems + refused)
    return Settings(
        env=env,
        config=config,
        webhook_secrets=secrets,
        keyring=keyring,
        missing_secrets=tuple(missing),
        weak_secrets=tuple(weak),
    )


def _weak_secrets(
    env: EnvSettings,
    config: ConfigFile,
    environ: Mapping[str, str],
    filename: str,
    line_of: Callable[[PathKey], int],
) -> list[str]:
    """Secrets set but too short to keep guessing out; each named by its variable, never quoted."""
    values = {  # empty ones mean "off" (the case API, the feeds) or "make one up" (the link key)
        "RESPONDER_API_TOKEN": env.api_token,
        "RESPONDER_LINK_SECRET": env.link_secret,
        "RESPONDER_ICAL_SECRET": env.ical_secret,
        "RESPONDER_PSEUDONYM_KEY": env.pseudonym_key,
    }
    weak = [f"environment {name}: {why}" for name, value in values.items() if (why := short_secret(value))]
    for index, integration in enumerate(config.integrations):
        secret = environ.get(integration.secret_env, "")
        why = weak_webhook_secret(secret) if secret.startswith("whsec_") else None  # else: missing
        if why:
            weak.append(
                f"{filename}:{line_of(('integrations', index, 'secret_env'))}: integrations[{index}]"
                f".secret_env: environment variable {integration.secret_env}: {why}"
            )
    return weak


def _load_env(environ: Mapping[str, str]) -> EnvSettings:
    values = {k: v for k, v in environ.items() if k.startswith(("RESPONDER_", "TWILIO_"))}
    try:
        return EnvSettings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError([f"environment {e['loc'][0]}: {_message(e['msg'])}" for e in exc.errors()]) from exc


def _message(text: str) -> str:
    return text.removeprefix("Value error, ")


def _cross_check(config: ConfigFile, filename: str, line_of: Callable[[PathKey], int]) -> list[str]:
    """References between sections: unique ids, on-call layers naming known people."""
    problems: list[str] = []
    ids = [p.id for p in config.people]
    for index, person_id in enumerate(ids):
        if ids.index(person_id) != index:
            problems.append(
                f"{filename}:{line_of(('people', index, 'id'))}: people[{index}].id: "
                f"duplicate id {person_id!r}"
            )
    owners: dict[str, str] = {}
    for index, person in enumerate(config.people):
        for pos, phone in enumerate(person.numbers):
            loc: PathKey = ("people", index, "phone")
            if pos > 0:
                loc = ("people", index, "alt_phones", pos - 1)
            where = f"people[{index}].phone" if pos == 0 else f"people[{index}].alt_phones[{pos - 1}]"
            if phone in owners:
                problems.append(
                    f"{filename}:{line_of(loc)}: {where}: also {owners[phone]!r}'s phone "
                    "(replies are matched by phone: each person needs their own)"
                )
            owners.setdefault(phone, person.id)
    names = [i.name for i in config.integrations]
    for index, name in enumerate(names):
        if names.index(name) != index:
            problems.append(
                f"{filename}:{line_of(('integrations', index, 'name'))}: "
                f"integrations[{index}].name: duplicate name {name!r}"
            )
    known = set(ids)
    for index, person_id in enumerate(config.default_team):
        if person_id not in known:
            problems.append(
                f"{filename}:{line_of(('default_team', index))}: default_team[{index}]: "
                f"unknown person {person_id!r}"
            )
    return problems
