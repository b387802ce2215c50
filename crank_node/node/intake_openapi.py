"""The public intake listener's contract as an OpenAPI 3.1 document (``GET /openapi.json``).

This module is the one source: docs/openapi.json is its output, checked in
(``python -m crank_node.node.intake_openapi > docs/openapi.json``), and a test fails
when the two drift. docs/API.md explains the signing that no schema can.
"""

from __future__ import annotations

import json
from typing import Any

from crank_node.node.http_server import STATUS_CODES
from crank_node.node.intake_errors import ERROR_CODES

__all__ = ["openapi_document", "render"]

Schema = dict[str, Any]

_U64 = {
    "description": "u64: a decimal string (answers always use strings), or in requests a "
    "JSON integer up to 2^53",
    "oneOf": [
        {"type": "string", "pattern": "^(0|[1-9][0-9]{0,19})$"},
        {"type": "integer", "minimum": 0, "maximum": 9007199254740992},
    ],
}
_U64_OUT: Schema = {
    "type": "string",
    "pattern": "^(0|[1-9][0-9]{0,19})$",
    "description": "u64 as a decimal string",
}
_BASE58_32: Schema = {"type": "string", "pattern": "^[1-9A-HJ-NP-Za-km-z]{32,44}$"}
_BASE58_64: Schema = {"type": "string", "pattern": "^[1-9A-HJ-NP-Za-km-z]{64,88}$"}
_MARKET_ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"}
_ORDER_STATUSES = ["open", "filled", "cancelled", "expired", "unfunded", "quarantined"]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: Schema, required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def _order_terms(u64: Schema) -> Schema:
    return {
        "market_id": _MARKET_ID,
        "side": {"type": "string", "enum": ["buy", "sell"]},
        "price_atoms": u64,
        "size_atoms": u64,
        "maker": _BASE58_32,
        "pay_account": _BASE58_32,
        "receive_account": _BASE58_32,
        "client_order_id": u64,
        "expiry_s": u64,
        "nonce": u64,
        "signature": _BASE58_64,
    }


def _schemas() -> Schema:
    stored = {
        "order_id": _BASE58_32,
        "status": {"type": "string", "enum": _ORDER_STATUSES},
        "remaining_atoms": _U64_OUT,
        "created_at": {"type": "string", "format": "date-time"},
        **_order_terms(_U64_OUT),
    }
    level = _object(
        {
            "price_atoms": _U64_OUT,
            "size_atoms": _U64_OUT,
            "order_count": {"type": "integer", "minimum": 1},
        }
    )
    settlement = _object(
        {
            "state": {"type": "string", "enum": ["pending", "sent", "confirmed", "failed"]},
            "reason": {"type": ["string", "null"]},
            "signature": {"oneOf": [_BASE58_64, {"type": "null"}]},
        }
    )
    fill = _object(
        {
            "fill_id": _BASE58_32,
            "market_id": _MARKET_ID,
            "sequence": _U64_OUT,
            "order_id": _BASE58_32,
            "counterparty_order_id": _BASE58_32,
            "liquidity": {"type": "string", "enum": ["maker", "taker"]},
            "side": {"type": "string", "enum": ["buy", "sell"]},
            "price_atoms": _U64_OUT,
            "base_atoms": _U64_OUT,
            "quote_atoms": _U64_OUT,
            "created_at": {"type": "string", "format": "date-time"},
            "settlement": _ref("Settlement"),
        }
    )
    codes = sorted(
        {*ERROR_CODES, *STATUS_CODES.values(), "body_too_large", "timeout", "rate_limited"}
    )
    error = _object(
        {
            "error": _object(
                {
                    "field": {"type": ["string", "null"], "description": "the field at fault"},
                    "reason": {"type": "string", "description": "for people; may change"},
                    "type": {
                        "type": "string",
                        "description": "the node's error class; informative",
                    },
                    "code": {
                        "type": "string",
                        "enum": codes,
                        "description": "stable, for machines",
                    },
                }
            )
        }
    )
    return {
        "SignedOrder": _object(_order_terms(_U64)),
        "SignedCancel": _object(
            {
                "order_id": _BASE58_32,
                "maker": _BASE58_32,
                "timestamp_s": _U64,
                "signature": _BASE58_64,
            }
        ),
        "SignedCancelAll": _object(
            {
                "market_id": _MARKET_ID,
                "maker": _BASE58_32,
                "timestamp_s": _U64,
                "signature": _BASE58_64,
            }
        ),
        "StoredOrder": _object(stored),
        "OrderList": _object(
            {"market_id": _MARKET_ID, "orders": {"type": "array", "items": _ref("StoredOrder")}}
        ),
        "CancelAllResult": _object(
            {
                "market_id": _MARKET_ID,
                "maker": _BASE58_32,
                "cancelled": {"type": "array", "items": _BASE58_32},
            }
        ),
        "Book": _object(
            {
                "market_id": _MARKET_ID,
                "bids": {"type": "array", "items": level},
                "asks": {"type": "array", "items": level},
            }
        ),
        "Settlement": settlement,
        "Fill": fill,
        "OrderFills": _object(
            {"order_id": _BASE58_32, "fills": {"type": "array", "items": _ref("Fill")}}
        ),
        "MakerFills": _object(
            {
                "maker": _BASE58_32,
                "fills": {"type": "array", "items": _ref("Fill")},
                "cursor": {"type": "string"},
            }
        ),
        "Error": error,
    }


_ERROR_TEXT = {
    400: "malformed request: a field that cannot be read (field names it)",
    404: "no such order, market or route",
    405: "method not allowed on this route",
    408: "the request head or body did not arrive in time",
    409: "a duplicate, an order that can no longer be cancelled, or a quarantined order",
    413: "body too large",
    422: "well-formed but not acceptable (price, size, expiry, signature, accounts)",
    429: "rate limited; see Retry-After",
    500: "a bug of the node's (never for input)",
    503: "the node is starting or stopping, or the chain or database did not answer; retry",
}


def _errors(*statuses: int) -> Schema:
    every = (400, 405, 408, 413, 429, 500, 503, *statuses)
    return {
        str(status): {
            "description": _ERROR_TEXT[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for status in sorted(set(every))
    }


def _ok(status: int, schema: str, description: str) -> Schema:
    return {
        str(status): {
            "description": description,
            "content": {"application/json": {"schema": _ref(schema)}},
        }
    }


def _body(schema: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _param(name: str, where: str, schema: Schema, required: bool, text: str) -> Schema:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": text}


_ORDER_ID = _param("order_id", "path", _BASE58_32, True, "base58 SHA-256 of the order's bytes")
_LIMIT = _param(
    "limit",
    "query",
    {"type": "integer", "minimum": 1, "maximum": 1000},
    False,
    "1 to 1000; 100 by default",
)
_STATUS_LIST = "^({0})(,({0}))*$".format("|".join(_ORDER_STATUSES))


def _paths() -> Schema:
    return {
        "/orders": {
            "post": {
                "operationId": "submitOrder",
                "summary": "Submit a signed order",
                "requestBody": _body("SignedOrder"),
                "responses": {**_ok(201, "StoredOrder", "stored, open"), **_errors(404, 409, 422)},
            },
            "get": {
                "operationId": "listOrders",
                "summary": "A market's orders, newest first",
                "parameters": [
                    _param("market_id", "query", _MARKET_ID, True, "the market"),
                    _param(
                        "status",
                        "query",
                        {"type": "string", "pattern": _STATUS_LIST},
                        False,
                        "comma-separated statuses: " + ", ".join(_ORDER_STATUSES),
                    ),
                    _LIMIT,
                ],
                "responses": {**_ok(200, "OrderList", "the orders"), **_errors(404)},
            },
        },
        "/orders/cancel-all": {
            "post": {
                "operationId": "cancelAll",
                "summary": "Cancel all of the signing maker's open orders in one market",
                "requestBody": _body("SignedCancelAll"),
                "responses": {
                    **_ok(200, "CancelAllResult", "the ids cancelled"),
                    **_errors(404, 422),
                },
            },
        },
        "/orders/{order_id}/cancel": {
            "post": {
                "operationId": "cancelOrder",
                "summary": "Cancel one order",
                "parameters": [_ORDER_ID],
                "requestBody": _body("SignedCancel"),
                "responses": {
                    **_ok(200, "StoredOrder", "the order, cancelled"),
                    **_errors(404, 409, 422),
                },
            },
        },
        "/orders/{order_id}": {
            "get": {
                "operationId": "getOrder",
                "summary": "One order",
                "parameters": [_ORDER_ID],
                "responses": {**_ok(200, "StoredOrder", "the order"), **_errors(404, 409)},
            },
        },
        "/orders/{order_id}/fills": {
            "get": {
                "operationId": "getOrderFills",
                "summary": "The order's fills and their settlement states",
                "parameters": [_ORDER_ID],
                "responses": {**_ok(200, "OrderFills", "in sequence order"), **_errors(404, 409)},
            },
        },
        "/fills": {
            "get": {
                "operationId": "getMakerFills",
                "summary": "A maker's fills after a cursor (by market, then sequence)",
                "parameters": [
                    _param("maker", "query", _BASE58_32, True, "the maker's public key"),
                    _param(
                        "since",
                        "query",
                        {"type": "string"},
                        False,
                        "the cursor of the previous answer",
                    ),
                    _LIMIT,
                ],
                "responses": {**_ok(200, "MakerFills", "a page and the next cursor"), **_errors()},
            },
        },
        "/markets/{market_id}/book": {
            "get": {
                "operationId": "getBook",
                "summary": "The market's depth, best first",
                "parameters": [_param("market_id", "path", _MARKET_ID, True, "the market")],
                "responses": {**_ok(200, "Book", "price levels per side"), **_errors(404)},
            },
        },
        "/stream": {
            "get": {
                "operationId": "stream",
                "summary": "Server-Sent Events of a market (fill, book, settlement) or of "
                "a maker (fill, settlement, order); resumable",
                "description": "Give exactly one of market_id and maker. Each fill event's "
                "id is a cursor; reconnect with it as since or Last-Event-ID. "
                "A client that falls behind gets a last 'dropped' event "
                "{reason} and is disconnected. Events: docs/API.md.",
                "parameters": [
                    _param("market_id", "query", _MARKET_ID, False, "a market's stream"),
                    _param("maker", "query", _BASE58_32, False, "a maker's stream"),
                    _param("since", "query", {"type": "string"}, False, "the last event id seen"),
                    _param(
                        "Last-Event-ID",
                        "header",
                        {"type": "string"},
                        False,
                        "as since (what SSE clients send on reconnect)",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "text/event-stream until the client "
                        "leaves, falls behind or the node stops",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(404),
                },
            },
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            },
        },
    }


def openapi_document() -> Schema:
    """The whole OpenAPI 3.1 document of the public intake listener."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crank-node public intake",
            "version": "1",
            "description": "Signed orders, cancels and the maker's fills. Signing, units "
            "and test vectors: docs/API.md. u64s are decimal strings in answers; requests "
            "may also use JSON integers up to 2^53.",
        },
        "paths": _paths(),
        "components": {"schemas": _schemas()},
    }


def render() -> str:
    """The document as checked in: sorted keys, two-space indents, a final newline."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
