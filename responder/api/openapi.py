"""The OpenAPI 3.1 document served at /v1/openapi.json."""

from __future__ import annotations

from functools import cache
from typing import Any

from responder import __version__
from responder.domain import OUTCOMES
from responder.intake.schema import Alert


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


@cache
def openapi_document() -> dict[str, Any]:
    alert_schema = Alert.model_json_schema(ref_template="#/components/schemas/{model}")
    components = alert_schema.pop("$defs", {})
    components["Alert"] = alert_schema
    components["Error"] = {
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {"error": {"type": "string"}, "detail": {}, "request_id": {"type": "string"}},
    }
    components["Accepted"] = {
        "type": "object",
        "required": ["case_id", "status", "duplicate"],
        "properties": {
            "case_id": {"type": "string"},
            "status": {"type": "string"},
            "duplicate": {"type": "boolean"},
        },
    }
    components["Resolve"] = {
        "type": "object",
        "required": ["outcome"],
        "properties": {"outcome": {"enum": list(OUTCOMES)}, "note": {"type": "string", "maxLength": 2000}},
    }
    case_id = [{"name": "case_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    review_filters = [
        {"name": name, "in": "query", "schema": {"type": "string"}, "description": text}
        for name, text in (
            ("from", "received on or after this UTC date (YYYY-MM-DD)"),
            ("to", "received before this UTC date"),
            ("region", "ISO 3166-2 region"),
            ("platform", "integration name"),
            ("outcome", "outcome code"),
            ("person", "roster id of who accepted"),
        )
    ]
    schedule_id = [{"name": "schedule_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    components["Override"] = {
        "type": "object",
        "required": ["person", "start", "end"],
        "properties": {
            "person": {"type": "string"},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "layer": {"type": "string", "default": "primary"},
            "replaces": {"type": "string"},
            "reason": {"type": "string", "maxLength": 500},
            "by": {"type": "string", "maxLength": 60, "description": "who asked (recorded as the actor)"},
        },
    }
    signed = [
        {"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
        for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "responder",
            "version": __version__,
            "description": "Crisis-intervention alert responder: alerts in, pages chased until accepted.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/alerts": {
                "post": {
                    "summary": "Post an alert (Standard Webhooks signed)",
                    "parameters": signed,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Alert"}}},
                    },
                    "responses": {
                        "202": _json("#/components/schemas/Accepted", "new case"),
                        "200": _json("#/components/schemas/Accepted", "repeat of an alert already taken in"),
                        "400": _error("not JSON"),
                        "401": _error("bad or missing signature, stale timestamp"),
                        "404": _error("retract for an unknown alert"),
                        "413": _error("over 64 KiB"),
                        "422": _error("schema errors, one per field"),
                    },
                }
            },
            "/v1/cases": {
                "get": {
                    "summary": "Recent cases",
                    "security": [{"bearer": []}],
                    "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "cases"}, "401": _error("no token")},
                }
            },
            "/v1/cases/{case_id}": {
                "get": {
                    "summary": "A case with its pages and timeline",
                    "security": [{"bearer": []}],
                    "parameters": [
                        *case_id,
                        {
                            "name": "X-Access-Reason",
                            "in": "header",
                            "description": "why you read a case resolved longer ago than the holder's "
                            "window (audited); required then",
                            "schema": {"type": "string", "maxLength": 500},
                        },
                    ],
                    "responses": {
                        "200": {"description": "the case"},
                        "401": _error("no token"),
                        "403": _error("the token's role may not, or reason_required"),
                        "404": _error("no such case"),
                    },
                }
            },
            "/v1/cases/{case_id}/resolve": {
                "post": {
                    "summary": "Resolve with an outcome code",
                    "security": [{"bearer": []}],
                    "parameters": case_id,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Resolve"}}},
                    },
                    "responses": {
                        "200": {"description": "the resolved case"},
                        "401": _error("no token"),
                        "404": _error("no such case"),
                        "409": _error("already resolved"),
                        "422": _error("unknown outcome or missing reason"),
                    },
                }
            },
            "/v1/cases/{case_id}/hold": {
                op: {
                    "summary": summary,
                    "security": [{"bearer": []}],
                    "parameters": case_id,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["reason"],
                                    "properties": {
                                        "reason": {"type": "string", "minLength": 1, "maxLength": 500}
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "the case's reference and retention (legal_hold, due times)"},
                        "401": _error("no token"),
                        "403": _error("not a manager's token"),
                        "404": _error("no such case"),
                        "409": _error(conflict),
                        "422": _error("no reason, or over 500 characters"),
                    },
                }
                for op, summary, conflict in (
                    (
                        "post",
                        "Put a case on legal hold: nothing of it is redacted until lifted",
                        "already held",
                    ),
                    ("delete", "Lift a case's legal hold: retention applies again", "not on hold"),
                )
            },
            "/v1/oncall": {
                "get": {
                    "summary": "Who is on call, in order, for a role in a region at a time",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {"name": "role", "in": "query", "required": True, "schema": {"type": "string"}},
                        {"name": "region", "in": "query", "schema": {"type": "string"}},
                        {"name": "at", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {"name": "language", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {"description": "people in layer order"},
                        "422": _error("bad query"),
                    },
                }
            },
            "/v1/schedules": {
                "get": {
                    "summary": "Schedules with their feed URLs",
                    "security": [{"bearer": []}],
                    "responses": {"200": {"description": "schedules"}, "401": _error("no token")},
                }
            },
            "/v1/schedules/{schedule_id}": {
                "get": {
                    "summary": "A schedule: overrides, the next 7 days' turns, its timeline (audit)",
                    "security": [{"bearer": []}],
                    "parameters": schedule_id,
                    "responses": {"200": {"description": "the schedule"}, "404": _error("no such schedule")},
                }
            },
            "/v1/schedules/{schedule_id}/overrides": {
                "post": {
                    "summary": "Put a person in a layer for a window (audited)",
                    "security": [{"bearer": []}],
                    "parameters": schedule_id,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Override"}}
                        },
                    },
                    "responses": {
                        "201": {"description": "the override's id"},
                        "404": _error("no such schedule"),
                        "422": _error("bad field, one entry per field"),
                    },
                }
            },
            "/v1/schedules/{schedule_id}/overrides/{override_id}": {
                "delete": {
                    "summary": "Cancel an override (audited)",
                    "security": [{"bearer": []}],
                    "parameters": [
                        *schedule_id,
                        {"name": "override_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {"description": "cancelled"},
                        "404": _error("no such override"),
                        "409": _error("already cancelled"),
                    },
                }
            },
            "/v1/metrics": {
                "get": {
                    "summary": "Review metrics: response times (median, p90), outcomes, lives saved",
                    "security": [{"bearer": []}],
                    "parameters": review_filters,
                    "responses": {
                        "200": {"description": "figures"},
                        "403": _error("role not allowed"),
                        "422": _error("bad filter"),
                    },
                }
            },
            "/v1/review/cases": {
                "get": {
                    "summary": "Cases filtered like the dashboard, newest first, paginated",
                    "security": [{"bearer": []}],
                    "parameters": [
                        *review_filters,
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        },
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    ],
                    "responses": {
                        "200": {"description": "a page of cases with total and next_offset"},
                        "422": _error("bad filter or page"),
                    },
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness (database reachable)",
                    "responses": {"200": {"description": "ready"}, "503": _error("not ready")},
                }
            },
        },
    }
