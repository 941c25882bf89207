"""Twilio's REST shapes: resource JSON, error bodies, sids and dates, exactly as the SDK expects them."""

from __future__ import annotations

import secrets
from datetime import datetime
from email.utils import format_datetime

from responder.simulator.state import SimCall, SimMessage

API_VERSION = "2010-04-01"


class TwilioApiError(Exception):
    """A REST request Twilio would refuse; rendered as Twilio's error JSON by the app's middleware."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def new_sid(prefix: str) -> str:
    """A Twilio-shaped sid: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's date format on the 2010-04-01 API: ``Wed, 13 Dec 2023 10:00:00 +0000``."""
    return None if moment is None else format_datetime(moment)


def message_json(message: SimMessage, account_sid: str) -> dict[str, object]:
    """A Message resource as Twilio answers it."""
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{message.sid}"
    return {
        "sid": message.sid,
        "account_sid": account_sid,
        "to": message.to,
        "from": message.from_,
        "body": message.body,
        "status": message.status,
        "direction": message.direction,
        "date_created": rfc2822(message.created_at),
        "date_updated": rfc2822(message.updated_at),
        "date_sent": rfc2822(message.sent_at),
        "num_segments": "1",
        "num_media": "0",
        "error_code": message.error_code,
        "error_message": None,
        "price": None,
        "price_unit": "USD",
        "api_version": API_VERSION,
        "messaging_service_sid": None,
        "uri": f"{uri}.json",
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
    }


def call_json(call: SimCall, account_sid: str) -> dict[str, object]:
    """A Call resource as Twilio answers it."""
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Calls/{call.sid}"
    duration = call.duration_s
    return {
        "sid": call.sid,
        "account_sid": account_sid,
        "parent_call_sid": None,
        "to": call.to,
        "to_formatted": call.to,
        "from": call.from_,
        "from_formatted": call.from_,
        "phone_number_sid": None,
        "status": call.status,
        "direction": "outbound-api",
        "answered_by": call.answered_by,
        "date_created": rfc2822(call.created_at),
        "date_updated": rfc2822(call.updated_at),
        "start_time": rfc2822(call.start_time),
        "end_time": rfc2822(call.end_time),
        "duration": None if duration is None else str(duration),
        "price": None,
        "price_unit": "USD",
        "api_version": API_VERSION,
        "caller_name": None,
        "forwarded_from": None,
        "group_sid": None,
        "queue_time": "0",
        "trunk_sid": None,
        "uri": f"{uri}.json",
        "subresource_uris": {
            "notifications": f"{uri}/Notifications.json",
            "recordings": f"{uri}/Recordings.json",
            "events": f"{uri}/Events.json",
        },
    }
