"""The OpenAPI description of the coordinator's public routes, served at GET /openapi.json.

Written out as data rather than derived from the routes: it is a contract for clients
and for the fuzzing tests, which send what it describes (and what it does not) and
require an answer in OpenAI's shape every time. The request's limits are the wire
format's own (`coordinator.protocol.openai`), so the two cannot disagree.
"""

from __future__ import annotations

from typing import Any

from coordinator.protocol import fields
from coordinator.protocol import openai as wire

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": "OpenAI-shaped error",
            "content": {"application/json": {"schema": _ERROR}},
        }
        for status in statuses
    }


def _json(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": sorted(wire.MESSAGE_ROLES)},
        "content": {
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "object"}},
                {"type": "null"},
            ]
        },
        "name": {"type": "string"},
    },
}

_CHAT_REQUEST = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        **{
            name: {"type": "number", "minimum": low, "maximum": high}
            for name, (low, high) in wire.NUMBER_RANGES.items()
        },
        **{name: {"type": "integer", "minimum": 1} for name in wire.WHOLE_NUMBERS},
        "stop": {
            "oneOf": [
                {"type": "string"},
                {"type": "array", "maxItems": wire.MAX_STOP, "items": {"type": "string", "minLength": 1}},
            ]
        },
        # n > 1: as many children as choices answer in parallel (no more than serve the model).
        "n": {"type": "integer", "minimum": 1, "maximum": fields.MAX_CHOICES},
        # Checked (400 invalid_value out of range), then refused unless they ask for nothing.
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "logprobs": {"type": "boolean"},
        "user": {"type": "string"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "store": {"type": "boolean"},
    },
}

_MODEL = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["model"]},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
    },
}

# The adapters' requests: their required fields; each route refuses by name what it cannot honour.
_RESPONSES_REQUEST = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "instructions": {"type": "string", "nullable": True},
        "tools": {"type": "array", "items": {"type": "object"}},
        "stream": {"type": "boolean"},
        "max_output_tokens": {"type": "integer", "minimum": 1},
    },
}
_MESSAGES_REQUEST = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {"type": "array", "minItems": 1, "items": {"type": "object"}},
        "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "tools": {"type": "array", "items": {"type": "object"}},
        "stream": {"type": "boolean"},
    },
}
_ANTHROPIC_ERROR = {"$ref": "#/components/schemas/AnthropicError"}


def _anthropic_errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": "Anthropic-shaped error",
            "content": {"application/json": {"schema": _ANTHROPIC_ERROR}},
        }
        for status in statuses
    }


def _adapter(summary: str, request: dict[str, Any], errors: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [_ID, _PRIORITY],
            "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
            "responses": {
                "200": {
                    "description": "The answer",
                    "content": {"application/json": {"schema": {"type": "object"}}, "text/event-stream": {}},
                },
                **errors,
            },
        }
    }


_ID = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
}
_PRIORITY = {
    "name": "X-Priority",
    "in": "header",
    "required": False,
    "description": "The queue lane (absent: the key's default, else normal); another value: 400.",
    "schema": {"type": "string", "enum": ["high", "normal", "low"]},
}


def openapi() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "coordinator",
            "version": "1",
            "description": "OpenAI-compatible API over browsers.",
        },
        "paths": {
            "/v1/chat/completions": {
                "post": {
                    "summary": "Chat completion, streamed (SSE) or not",
                    "parameters": [_ID, _PRIORITY],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _CHAT_REQUEST}},
                    },
                    "responses": {
                        "200": {
                            "description": "The answer",
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/event-stream": {},
                            },
                        },
                        **_errors(400, 401, 404, 413, 429, 499, 502, 503),
                    },
                }
            },
            "/v1/responses": _adapter(
                "OpenAI Responses API on the same pool, streamed (SSE events) or not",
                _RESPONSES_REQUEST,
                _errors(400, 401, 404, 413, 429, 499, 502, 503),
            ),
            "/v1/messages": _adapter(
                "Anthropic Messages API on the same pool, streamed (SSE events) or not",
                _MESSAGES_REQUEST,
                _anthropic_errors(400, 401, 404, 413, 429, 499, 502, 503),
            ),
            "/v1/models": {
                "get": {"summary": "Models", "responses": {"200": _json("OpenAI list"), **_errors(401)}}
            },
            "/v1/models/{model}": {
                "get": {
                    "summary": "A model some child offers, as OpenAI's Model object (else 404)",
                    "parameters": [
                        {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The model",
                            "content": {"application/json": {"schema": _MODEL}},
                        },
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/cancel/{request_id}": {
                "post": {
                    "summary": "Cancel a queued or running request",
                    "parameters": [
                        {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": _json("Cancelled"), **_errors(401, 404)},
                }
            },
            "/live": {"get": {"summary": "Liveness", "responses": {"200": _json("Serving")}}},
            "/ready": {
                "get": {"summary": "Readiness", "responses": {"200": _json("Ready"), "503": _json("Not")}}
            },
            "/health": {
                "get": {"summary": "Readiness", "responses": {"200": _json("Ready"), "503": _json("Not")}}
            },
            "/admin/children": {
                "get": {
                    "summary": "Children",
                    "responses": {"200": _json("One object per child"), **_errors(401)},
                }
            },
            "/admin/usage": {
                "get": {
                    "summary": "Usage ledger report",
                    "parameters": [
                        {
                            "name": "group_by",
                            "in": "query",
                            "schema": {
                                "type": "string",
                                "enum": ["profile", "model", "day", "key", "profile,day"],
                            },
                        },
                        {"name": "from", "in": "query", "schema": {"type": "string"}},
                        {"name": "to", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json("Rows per group"), **_errors(400, 401, 503)},
                }
            },
            "/admin/usage/quota": {
                "get": {
                    "summary": "Quota view: use per profile and model in the quota day (Pacific)",
                    "responses": {
                        "200": _json("The quota day and one row per profile and model"),
                        **_errors(401),
                    },
                }
            },
            "/admin/children/{child_id}/{action}": {
                "post": {
                    "summary": "Restart or drain a child",
                    "parameters": [
                        {"name": "child_id", "in": "path", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "action",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": ["restart", "drain"]},
                        },
                    ],
                    "responses": {"202": _json("Accepted"), **_errors(401, 404)},
                }
            },
        },
        "components": {
            "schemas": {
                "AnthropicError": {
                    "type": "object",
                    "required": ["type", "error"],
                    "properties": {
                        "type": {"type": "string", "enum": ["error"]},
                        "error": {
                            "type": "object",
                            "required": ["type", "message"],
                            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["message", "type"],
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "param": {"type": "string", "nullable": True},
                                "code": {"type": "string", "nullable": True},
                            },
                        }
                    },
                },
            }
        },
    }
