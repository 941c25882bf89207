"""The alert a platform posts (PRODUCT.md §2). Unknown fields are ignored, never a reason to drop an alert."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from responder.errors import ValidationFailed

_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_REGION = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Risk(_Part):
    level: Literal["imminent", "high", "medium", "low"]
    score: float | None = Field(None, ge=0, le=1)
    method: Literal["classifier", "user_report"] | None = None


class Content(_Part):
    type: Literal["post", "story", "live", "comment", "message"] | None = None
    url: str | None = Field(None, max_length=2048)
    excerpt: str | None = Field(None, max_length=5000)
    language: str | None = None
    created_at: AwareDatetime | None = None
    is_live: bool = False

    @field_validator("language")
    @classmethod
    def _bcp47(cls, value: str | None) -> str | None:
        if value is not None and not _BCP47.match(value):
            raise ValueError("must be a BCP 47 language tag such as 'fr' or 'pt-BR'")
        return value


class Subject(_Part):
    account_id: str | None = Field(None, max_length=256)
    profile_url: str | None = Field(None, max_length=2048)
    display_name: str | None = Field(None, max_length=256)
    languages: tuple[str, ...] = ()


class LocationHint(_Part):
    kind: Literal["geotag", "ip", "city", "phone", "text"]
    value: str = Field(min_length=1, max_length=1000)
    country: str | None = None
    region: str | None = None
    confidence: float | None = Field(None, ge=0, le=1)
    source: str | None = Field(None, max_length=500)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and not _COUNTRY.match(value):
            raise ValueError("must be an ISO 3166-1 alpha-2 code such as 'FR'")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError("must be an ISO 3166-2 code such as 'FR-75'")
        return value


class PlatformContact(_Part):
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=320)
    emergency_request_url: str | None = Field(None, max_length=2048)
    reference: str | None = Field(None, max_length=256)


class Alert(_Part):
    alert_id: str = Field(min_length=1, max_length=128)
    detected_at: AwareDatetime
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


def parse_alert(data: Any) -> Alert:
    """Validate a decoded body; every problem is reported with its field path."""
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "(body)", "message": "must be a JSON object"}])
    try:
        return Alert.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            [
                {"field": _dotted(error["loc"]), "message": error["msg"].removeprefix("Value error, ")}
                for error in exc.errors()
            ]
        ) from exc


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def detected_at_utc(alert: Alert) -> datetime:
    return alert.detected_at
