"""Prometheus metrics (PRODUCT.md §6): what a pager's operators watch. Served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

# Latency buckets in seconds, fine-grained where the targets are (50 ms, 100 ms).
_FAST = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "responder_http_requests",
    "HTTP requests answered, by route and status",
    ["route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "responder_http_request_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=_FAST,
    registry=REGISTRY,
)
ALERTS = Counter(
    "responder_alerts", "Alerts taken in, by event and result", ["event", "result"], registry=REGISTRY
)
PAGES_SENT = Counter(
    "responder_pages_sent", "Pages and notices accepted by Twilio", ["channel", "purpose"], registry=REGISTRY
)
PAGE_FAILURES = Counter(
    "responder_page_failures",
    "Pages that failed (send refused, undelivered, busy, machine...)",
    ["channel", "stage"],
    registry=REGISTRY,
)
SEND_RETRIES = Counter(
    "responder_send_retries", "Twilio requests retried after 429, 5xx or no answer", registry=REGISTRY
)
ACCEPTS = Counter("responder_cases_accepted", "Cases accepted, by channel", ["via"], registry=REGISTRY)
STEP_LATENESS = Histogram(
    "responder_step_lateness_seconds",
    "How late a due escalation step was acted on",
    buckets=_FAST,
    registry=REGISTRY,
)
CHANNEL_FAILOVERS = Counter(
    "responder_channel_failovers",
    "A failed page retried at once on the person's next channel, by the channel taken",
    ["channel"],
    registry=REGISTRY,
)
CONTACT_FLAGS = Counter(
    "responder_contact_flags",
    "Channels flagged unusable (STOP, refused or invalid numbers), by channel",
    ["channel"],
    registry=REGISTRY,
)
THROTTLED = Counter(
    "responder_pages_throttled",
    "Pages held back a few seconds (or combined into one SMS) by the per-phone flood limit",
    registry=REGISTRY,
)
PHONE_LIMITS_REACHED = Counter(
    "responder_phone_limits_reached",
    "Times a person's phone reached the flood limit (the on-call manager is told)",
    registry=REGISTRY,
)
TWILIO_OUTAGE = Gauge(
    "responder_twilio_outage",
    "1 while this replica's requests to Twilio fail (unreachable, 5xx, 429); pages are retried meanwhile",
    registry=REGISTRY,
)
RECONCILED = Counter(
    "responder_pages_reconciled",
    "Pages whose status was fetched from Twilio (a callback never came)",
    registry=REGISTRY,
)
OPEN_CASES = Gauge("responder_open_cases", "Cases not yet accepted", registry=REGISTRY)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
