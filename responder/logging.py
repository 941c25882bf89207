"""structlog set-up: JSON in production, console on a terminal; phones masked, personal data dropped."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_PHONE = re.compile(r"\+\d{6,15}")
# Keys whose values may hold personal data or page text; they never reach a log line.
_DROPPED_KEYS = frozenset({"body", "name", "display_name", "excerpt", "subject", "text", "message_body"})


def mask_phone(number: str) -> str:
    """+33612345678 → +336*****78: enough to tell phones apart, not enough to call one."""
    return number[:4] + "*" * max(len(number) - 6, 0) + number[-2:]


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return _PHONE.sub(lambda m: mask_phone(m.group(0)), value)
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items() if k not in _DROPPED_KEYS}
    return value


def scrub(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop personal keys, mask every phone number."""
    for key in [k for k in event_dict if k in _DROPPED_KEYS]:
        del event_dict[key]
    for key, value in event_dict.items():
        event_dict[key] = _mask_value(value)
    return event_dict


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Call once at start-up; `auto` picks console on a terminal and JSON otherwise."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries (aiohttp access log, twilio) would print URLs and bodies: keep them quiet.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for noisy in ("aiohttp.access", "twilio", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
