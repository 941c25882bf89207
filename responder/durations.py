"""Durations as people write them in YAML: "90s", "3m", "1h30m", "24h" or a number of seconds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(value: object) -> float:
    """Seconds in a duration; raises ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("a duration must be like '90s', '3m', '1h30m' or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_S[match.group(2)]
            pos = match.end()
        if pos != len(text):
            raise ValueError(f"invalid duration {value!r}: use forms like '90s', '3m', '1h30m'")
    else:
        raise ValueError("a duration must be like '90s', '3m', '1h30m' or a number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form: 0s, 45s, 3m, 1h30m, 24h."""
    total = round(seconds)
    if total == 0 and seconds > 0:
        return f"{seconds:.2f}s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


DurationS = Annotated[float, BeforeValidator(parse_duration_s)]
"""A pydantic field type: accepts duration text, stores seconds."""
