"""What a payload on the order channel must be to count as a notice (anyone who can
connect may NOTIFY on any channel: the listener reads it as untrusted input)."""

from __future__ import annotations

import json

import pytest

from storage import parse_order_notice


def test_a_notice_names_its_schema_and_market() -> None:
    notice = parse_order_notice(json.dumps({"schema": "public", "market": "SOL-USDC"}))
    assert notice is not None
    assert (notice.schema, notice.market_id) == ("public", "SOL-USDC")


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "SOL-USDC",
        "{not json",
        json.dumps(["public", "SOL-USDC"]),
        json.dumps({"schema": "public"}),
        json.dumps({"market": "SOL-USDC"}),
        json.dumps({"schema": "public", "market": ""}),
        json.dumps({"schema": "public", "market": 7}),
        json.dumps({"schema": None, "market": "SOL-USDC"}),
        json.dumps({"schema": "public", "market": "M" * 2_000}),
    ],
)
def test_anything_else_is_not_a_notice(payload: str) -> None:
    assert parse_order_notice(payload) is None
