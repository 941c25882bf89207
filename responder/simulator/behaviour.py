"""How a simulated phone (and Twilio's API in front of it) reacts: deliver, ring busy, rate-limit..."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

SmsOutcome = Literal["deliver", "undelivered", "failed"]
CallOutcome = Literal["answer", "busy", "no-answer", "failed", "machine"]
ApiError = Literal[429, 500]

# Twilio error 30003: "Unreachable destination handset", the usual reason for an undelivered SMS.
DEFAULT_SMS_ERROR_CODE = 30003


class BehaviourError(ValueError):
    """A behaviour field has a value the simulator cannot act out; ``field`` names it."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


@dataclass(frozen=True)
class Behaviour:
    """What happens to the next SMS, call and API request addressed to a phone.

    ``api_error`` makes the next ``api_error_count`` create requests to the phone fail with that HTTP
    status before anything is stored, like Twilio rate-limiting or failing.
    """

    sms: SmsOutcome = "deliver"
    sms_error_code: int = DEFAULT_SMS_ERROR_CODE
    call: CallOutcome = "answer"
    api_error: ApiError | None = None
    api_error_count: int = 1
    # Twilio refuses an SMS to this number at once (HTTP 400), e.g. 21614 "not a mobile number" or
    # 21211 "invalid number"; 21610 happens by itself after the phone texts STOP.
    sms_reject_code: int | None = None
    # Twilio takes the message (it is sent) but answers the create request only this much later.
    api_delay_s: float = 0.0
    # Status callbacks are lost on the way (the status is still there for a fetch of the resource).
    callbacks: bool = True

    def __post_init__(self) -> None:
        _check_choice("sms", self.sms, get_args(SmsOutcome))
        _check_choice("call", self.call, get_args(CallOutcome))
        if self.api_error is not None:
            _check_choice("api_error", self.api_error, get_args(ApiError))
        _check_int("sms_error_code", self.sms_error_code, minimum=1)
        _check_int("api_error_count", self.api_error_count, minimum=0)
        if self.sms_reject_code is not None:
            _check_int("sms_reject_code", self.sms_reject_code, minimum=1)
        if (
            not isinstance(self.api_delay_s, int | float)
            or isinstance(self.api_delay_s, bool)
            or self.api_delay_s < 0
        ):
            raise BehaviourError("api_delay_s", f"{self.api_delay_s!r} is not a number of seconds >= 0")
        if not isinstance(self.callbacks, bool):
            raise BehaviourError("callbacks", f"{self.callbacks!r} is not true or false")

    def updated(self, changes: Mapping[str, object]) -> Behaviour:
        """Return a copy with the given JSON fields changed; raises BehaviourError naming a bad field."""
        known = {f.name for f in dataclasses.fields(self)}
        for name in changes:
            if name not in known:
                raise BehaviourError(name, f"unknown field (known: {', '.join(sorted(known))})")
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]  # values checked in __post_init__

    def to_json(self) -> dict[str, object]:
        """The behaviour as the control API shows it."""
        return dataclasses.asdict(self)


def _check_choice(field: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        raise BehaviourError(field, f"{value!r} is not one of {', '.join(map(repr, choices))}")


def _check_int(field: str, value: object, minimum: int) -> None:
    # bool is an int subclass, but `true` is not a count.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BehaviourError(field, f"{value!r} is not an integer >= {minimum}")
