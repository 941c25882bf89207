"""The alert a platform posts (PRODUCT.md §2), validated strictly at the edge.

Whatever passes here can be stored on SQLite and PostgreSQL alike: strict types (a string is never
taken for a number), bounded lengths, no NUL, finite numbers, dates a database can hold, a nesting bound
(the JSON parser's). Unknown fields are ignored, never a reason to drop an alert, and never stored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from responder.errors import InvalidJSON, ValidationFailed

# Matched whole (fullmatch): with re.match, "$" also matches before a final newline, and "FR-75\n"
# would pass as a region that routes nowhere.
_BCP47 = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
_REGION = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}")
_COUNTRY = re.compile(r"[A-Z]{2}")
# RFC 5646 advises tags of at most 35 characters; the case's language column holds that many.
LANGUAGE_TAG_MAX = 35
# Dates outside these years are typos or attacks, and some cannot be held in UTC by Python at all.
EARLIEST_YEAR, LATEST_YEAR = 1970, 2999
# The parser refuses JSON nested deeper than this (pydantic's own bound); an alert needs 3 levels.
NESTING_LIMIT = 200


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and no alert field needs one.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _in_range(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        raise ValueError(f"must be a date between {EARLIEST_YEAR} and {LATEST_YEAR} (UTC)")
    return value


def _language(value: str) -> str:
    if not _BCP47.fullmatch(value):
        raise ValueError("must be a BCP 47 language tag such as 'fr' or 'pt-BR'")
    return value


def _pattern(regex: re.Pattern[str], message: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


NoNul = AfterValidator(_no_nul)
Id = Annotated[str, StringConstraints(min_length=1, max_length=128), NoNul]
Url = Annotated[str, StringConstraints(max_length=2048), NoNul]
Short = Annotated[str, StringConstraints(max_length=256), NoNul]  # names, ids, references
Phone = Annotated[str, StringConstraints(max_length=32), NoNul]
Email = Annotated[str, StringConstraints(max_length=320), NoNul]
Excerpt = Annotated[str, StringConstraints(max_length=5000), NoNul]
HintValue = Annotated[str, StringConstraints(min_length=1, max_length=1000), NoNul]
Source = Annotated[str, StringConstraints(max_length=500), NoNul]
Time = Annotated[AwareDatetime, AfterValidator(_in_range)]
Language = Annotated[str, StringConstraints(max_length=LANGUAGE_TAG_MAX), AfterValidator(_language)]
Country = Annotated[str, _pattern(_COUNTRY, "must be an ISO 3166-1 alpha-2 code such as 'FR'")]
Region = Annotated[str, _pattern(_REGION, "must be an ISO 3166-2 code such as 'FR-75'")]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Part(BaseModel):
    # strict: "0.6" is not a number and "true" not a boolean; allow_inf_nan: NaN is no score.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False)


class Risk(_Part):
    level: Literal["imminent", "high", "medium", "low"]
    score: Fraction | None = None
    method: Literal["classifier", "user_report"] | None = None


class Content(_Part):
    type: Literal["post", "story", "live", "comment", "message"] | None = None
    url: Url | None = None
    excerpt: Excerpt | None = None
    language: Language | None = None
    created_at: Time | None = None
    is_live: bool = False


class Subject(_Part):
    account_id: Short | None = None
    profile_url: Url | None = None
    display_name: Short | None = None
    languages: tuple[Language, ...] = Field((), max_length=20)


class LocationHint(_Part):
    kind: Literal["geotag", "ip", "city", "phone", "text"]
    value: HintValue
    country: Country | None = None
    region: Region | None = None
    confidence: Fraction | None = None
    source: Source | None = None


class PlatformContact(_Part):
    phone: Phone | None = None
    email: Email | None = None
    emergency_request_url: Url | None = None
    reference: Short | None = None


class Alert(_Part):
    alert_id: Id
    detected_at: Time
    event: Literal["new", "update", "retract"] = "new"
    risk: Risk
    content: Content | None = None
    subject: Subject | None = None
    location_hints: tuple[LocationHint, ...] = Field((), max_length=50)
    platform_contact: PlatformContact | None = None

    @property
    def is_live(self) -> bool:
        return bool(self.content and (self.content.is_live or self.content.type == "live"))

    def best_region(self) -> str | None:
        """The region of the most confident hint that has one, else its country."""
        hints = sorted(self.location_hints, key=lambda h: -(h.confidence or 0.0))
        for hint in hints:
            if hint.region:
                return hint.region
        return next((h.country for h in hints if h.country), None)

    @property
    def language(self) -> str | None:
        if self.content and self.content.language:
            return self.content.language
        return self.subject.languages[0] if self.subject and self.subject.languages else None

    def stored(self) -> dict[str, Any]:
        """What the case keeps: the validated fields that were sent, as JSON (unknown ones dropped)."""
        return self.model_dump(mode="json", exclude_unset=True)


def parse_alert(body: bytes | str) -> Alert:
    """Parse and validate a body; every problem is reported with its field path.

    Not JSON (or not UTF-8) is InvalidJSON (400); JSON that breaks the schema, nests too deep or is
    not an object is ValidationFailed (422). Neither message echoes the body.
    """
    try:
        return Alert.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        invalid = [e for e in errors if e["type"] == "json_invalid"]
        if invalid and "recursion limit" in invalid[0]["msg"]:
            raise ValidationFailed(
                [{"field": "(body)", "message": f"nested deeper than {NESTING_LIMIT} levels"}]
            ) from None
        if invalid:
            raise InvalidJSON(f"body is not JSON: {_position(invalid[0]['msg'])}") from None
        raise ValidationFailed([_problem(e["loc"], e["type"], e["msg"]) for e in errors]) from None


def _position(message: str) -> str:
    # pydantic says "Invalid JSON: expected value at line 1 column 2": keep the reason, never input.
    return message.removeprefix("Invalid JSON: ")


def _problem(loc: tuple[int | str, ...], kind: str, message: str) -> dict[str, str]:
    if not loc and kind == "model_type":
        return {"field": "(body)", "message": "must be a JSON object"}
    return {"field": _dotted(loc) or "(body)", "message": message.removeprefix("Value error, ")}


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        # Union members (e.g. `function-after[...]`, `str`) show up in loc; they are not fields.
        if isinstance(part, str) and ("[" in part or part in ("str", "float", "none")):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
