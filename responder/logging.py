"""structlog set-up: JSON in production, console on a terminal; phones masked, personal data dropped,
exception messages never written. Library loggers (aiohttp, SQLAlchemy, asyncio, twilio...) go through
the same processors, so the same rules hold for every line on stderr."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

import structlog

_PHONE = re.compile(r"\+\d{6,15}")
# Keys whose values may hold personal data or page text; they never reach a log line.
_DROPPED_KEYS = frozenset({"body", "name", "display_name", "excerpt", "subject", "text", "message_body"})


def mask_phone(number: str) -> str:
    """+33612345678 → +336*****78: enough to tell phones apart, not enough to call one."""
    return number[:4] + "*" * max(len(number) - 6, 0) + number[-2:]


# A phone number written without "+" (0033 6 39 98 00 01, 0639980001): seven digits or more, perhaps
# spaced, dotted or dashed.
_BARE_PHONE = re.compile(r"(?<![\w+])\d(?:[ .-]?\d){6,}(?!\w)")


def mask_phones(text: str) -> str:
    """Every phone number in a text masked, with or without its "+" (Twilio's error messages quote
    the number they refused)."""
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    return _BARE_PHONE.sub(lambda m: mask_phone(re.sub(r"\D", "", m.group(0))), text)


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


# Exception messages are never logged: they quote what failed. A SQLAlchemy error carries the
# statement and its parameters (the alert), aiohttp's parse errors the request's raw bytes, a
# ValueError its input. Logged instead: every frame of the traceback (file, line and source line:
# code, no values), each exception's type, and the codes it has (SQLSTATE, errno, HTTP status).
_CODE_ATTRIBUTES = ("sqlstate", "pgcode", "sqlite_errorname", "errno", "strerror", "status", "code")
_CODE = re.compile(r"^[\w. -]{1,40}$")


def describe_exception(exc: BaseException) -> str:
    """`asyncpg.exceptions.RaiseError (sqlstate=P0001)`: the type and its codes, never the message."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    codes = []
    for attribute in _CODE_ATTRIBUTES:
        value = None
        with contextlib.suppress(Exception):  # a property that fails has no code to give
            value = getattr(exc, attribute, None)
        if (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and _CODE.match(value)
        ):
            codes.append(f"{attribute}={value}")
    return f"{name} ({', '.join(codes)})" if codes else name


def exception_text(exc: BaseException) -> str:
    """The traceback of `exc` and of the exceptions that led to it, without their messages."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain) and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n\nwhich led to:\n\n".join(
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_tb(item.__traceback__))
        + describe_exception(item)
        for item in reversed(chain)
    )


def render_exception(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor, in place of `format_exc_info`: `exc_info` becomes `exception_text`."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    if isinstance(exc, BaseException):
        event_dict["exception"] = exception_text(exc)
    return event_dict


def _first_line(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A library's line keeps its first line: asyncio appends reprs of tasks, and of their exceptions."""
    if isinstance(event_dict.get("event"), str):
        event_dict["event"] = event_dict["event"].split("\n", 1)[0]
    return event_dict


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Call once at start-up; `auto` picks console on a terminal and JSON otherwise."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        render_exception,
        scrub,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Every stdlib logger (aiohttp.server, sqlalchemy, asyncio, twilio, apscheduler, warnings) goes
    # through the same processors, the scrub included, and out to the same stream.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, _first_line, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries log URLs and bodies below WARNING (twilio logs each request): warnings and up only.
    root.setLevel(max(logging.WARNING, getattr(logging, level.upper())))
    for noisy in ("aiohttp.access", "twilio", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
