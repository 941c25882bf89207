"""The fields of Twilio's webhooks, read strictly. A signed form is still input: whoever holds the auth
token can sign anything, and Twilio's signature joins names and values without separators, so a
captured form can be refolded (`MessageSid=SMx`, `NumMedia=0` → `MessageSid=SMxNumMedia0`) under the
same signature. Every field the service acts on must have Twilio's own shape, or it is refused or
ignored; nothing unexpected reaches the database."""

from __future__ import annotations

import re

from responder.errors import BadRequest

# Twilio's sids: two letters and 32 lowercase hex digits (SM/MM messages, CA calls).
_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-f]{32}")
_CALL_SID = re.compile(r"CA[0-9a-f]{32}")
_DIGITS = re.compile(r"[0-9*#]{0,8}")
_WORD = re.compile(r"[a-z][a-z_-]{0,31}")  # statuses (in-progress) and AnsweredBy (machine_start)
_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: "²".isdigit() is True, int("²") fails


def message_sid(value: str | None) -> str:
    return _sid("MessageSid", value, _MESSAGE_SID, "SM followed by 32 hex digits")


def call_sid(value: str | None) -> str:
    return _sid("CallSid", value, _CALL_SID, "CA followed by 32 hex digits")


def _sid(field: str, value: str | None, shape: re.Pattern[str], described: str) -> str:
    if value is None or not shape.fullmatch(value):
        raise BadRequest([{"field": field, "message": f"required: {described}"}])
    return value


def number(value: str | None) -> int | None:
    """A small non-negative integer (SequenceNumber, ErrorCode, play), or None when it is not one."""
    return int(value) if value is not None and _NUMBER.fullmatch(value) else None


def digits(value: str | None) -> str:
    """The keys pressed; anything that is not keys counts as no key."""
    return value if value is not None and _DIGITS.fullmatch(value) else ""


def word(value: str | None) -> str | None:
    """A status or an AnsweredBy value; None when it has not Twilio's shape."""
    return value if value is not None and _WORD.fullmatch(value) else None
