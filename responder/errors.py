"""Domain errors: each carries the HTTP status and a stable error code; the API middleware renders them."""

from __future__ import annotations

from typing import Any


class ResponderError(Exception):
    """Base for every error the service reports to a caller on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, detail: Any = None) -> None:
        super().__init__(detail if isinstance(detail, str) else self.code)
        self.detail = detail


class BadRequest(ResponderError):
    status = 400
    code = "bad_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class Unauthorized(ResponderError):
    status = 401
    code = "unauthorized"


class BadSignature(Unauthorized):
    code = "bad_signature"


class Forbidden(ResponderError):
    status = 403
    code = "forbidden"


class NotFound(ResponderError):
    status = 404
    code = "not_found"


class Conflict(ResponderError):
    status = 409
    code = "conflict"


class Gone(ResponderError):
    status = 410
    code = "gone"


class PayloadTooLarge(ResponderError):
    status = 413
    code = "payload_too_large"


class ValidationFailed(ResponderError):
    """A request body that parsed but broke the schema; detail lists {field, message} per problem."""

    status = 422
    code = "validation_failed"


class NotReady(ResponderError):
    status = 503
    code = "not_ready"


class Unavailable(ResponderError):
    """The database did not answer in time: nothing was stored; the caller should try again soon."""

    status = 503
    code = "unavailable"
    retry_after_s = 5


class ConfigError(Exception):
    """Configuration or playbook that cannot be used; the message names file, line and field."""

    def __init__(self, problems: list[str], heading: str = "configuration error") -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.heading = heading  # how `responder` introduces the problems on stderr
