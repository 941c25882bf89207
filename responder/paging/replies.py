"""Reading what people text back: ACK, ACK <case>, NO, HELP, STOP, START."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verb = Literal["ack", "pass", "help", "stop", "start", "unknown"]
_VERBS: dict[str, Verb] = {
    "ACK": "ack",
    "ACCEPT": "ack",
    "NO": "pass",
    "PASS": "pass",
    "HELP": "help",
    "INFO": "help",
    "STOP": "stop",
    "STOPALL": "stop",
    "UNSUBSCRIBE": "stop",
    "CANCEL": "stop",
    "END": "stop",
    "QUIT": "stop",
    "START": "start",
    "UNSTOP": "start",
}


# A case reference as people type it (the service's are 5 letters and digits; a little room to spare).
_CODE = re.compile(r"[A-Z0-9]{1,16}")


@dataclass(frozen=True)
class Reply:
    verb: Verb
    code: str | None = None


def parse_reply(body: str) -> Reply:
    """`ack k7q2x` → Reply('ack', 'K7Q2X'); anything unrecognised is 'unknown'."""
    words = body.strip().upper().replace(",", " ").split()
    if not words:
        return Reply("unknown")
    verb = _VERBS.get(words[0].strip(".!"), "unknown")
    code = words[1].strip(".!#") if len(words) > 1 and verb in ("ack", "pass") else None
    if code and not _CODE.fullmatch(code):
        return Reply("unknown")  # not a case reference: never taken as "the latest page"
    return Reply(verb, code or None)
