"""Parse the TwiML the service answers with into plain verbs (no I/O, no execution)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

# Twilio's default <Gather timeout>, in seconds.
DEFAULT_GATHER_TIMEOUT_S = 5.0


class TwimlError(ValueError):
    """The document is not TwiML the simulator can follow (Twilio would play an application error)."""


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Pause:
    length_s: float


@dataclass(frozen=True)
class Play:
    url: str


@dataclass(frozen=True)
class Gather:
    """Wait for keys; ``action`` None means "post back to the current document's URL"."""

    action: str | None
    method: str
    num_digits: int | None
    timeout_s: float
    action_on_empty_result: bool
    prompts: tuple[Say, ...]


@dataclass(frozen=True)
class Redirect:
    url: str
    method: str


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Unsupported:
    """A verb the simulator does not act on (``<Dial>``, ``<Record>``...); kept so it can be reported."""

    tag: str


Verb = Say | Pause | Play | Gather | Redirect | Hangup | Unsupported


def parse_voice(text: str) -> list[Verb]:
    """Parse a voice TwiML document into its top-level verbs, in order."""
    return [_parse_verb(element) for element in _parse_response(text)]


def parse_messages(text: str) -> list[str]:
    """Return the bodies of the ``<Message>`` verbs of a messaging TwiML reply (empty body → none)."""
    if not text.strip():
        return []
    bodies = []
    for element in _parse_response(text):
        if element.tag != "Message":
            continue
        body = element.find("Body")
        bodies.append(_text(body if body is not None else element))
    return bodies


def _parse_response(text: str) -> ET.Element:
    try:
        # The TwiML comes from the service under test, a trusted peer: no need for defusedxml.
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError as exc:
        raise TwimlError(f"TwiML is not well-formed XML: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError(f"TwiML root element is <{root.tag}>, expected <Response>")
    return root


def _parse_verb(element: ET.Element) -> Verb:
    match element.tag:
        case "Say":
            return Say(_text(element))
        case "Pause":
            return Pause(_number(element, "length", 1.0))
        case "Play":
            return Play(_text(element))
        case "Gather":
            return _parse_gather(element)
        case "Redirect":
            return Redirect(_text(element), element.get("method", "POST").upper())
        case "Hangup" | "Reject":
            return Hangup()
        case _:
            return Unsupported(element.tag)


def _parse_gather(element: ET.Element) -> Gather:
    num_digits = _number(element, "numDigits", 0.0)
    return Gather(
        action=element.get("action"),
        method=element.get("method", "POST").upper(),
        num_digits=int(num_digits) if num_digits >= 1 else None,
        timeout_s=_number(element, "timeout", DEFAULT_GATHER_TIMEOUT_S),
        action_on_empty_result=element.get("actionOnEmptyResult", "false").lower() == "true",
        prompts=tuple(Say(_text(child)) for child in element if child.tag == "Say"),
    )


def _number(element: ET.Element, attribute: str, default: float) -> float:
    raw = element.get(attribute)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise TwimlError(f"<{element.tag} {attribute}={raw!r}> is not a number") from exc


def _text(element: ET.Element) -> str:
    return " ".join("".join(element.itertext()).split())
