"""The maker's view of its fills over HTTP: their JSON form and the paging cursor.

The cursor (``GET /fills?maker=...&since=CURSOR``) is opaque to clients: base64url of
``{"v": 1, "m": {market_id: last sequence seen}}``. Fill sequences never go back and are
the same on every node, so a cursor survives restarts and works on any node.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from crank_node.node.intake_errors import BadCursor
from market.errors import MarketError
from market.fields import U64_MAX, check_market_id
from storage.maker_fills import MakerFill

__all__ = ["MAX_CURSOR_CHARS", "advance_cursor", "decode_cursor", "encode_cursor", "fill_json"]

MAX_CURSOR_CHARS = 4_096


def fill_json(fill: MakerFill) -> dict[str, Any]:
    """A fill as ``/orders/{id}/fills`` and ``/fills`` answer it (u64s as strings)."""
    return {
        "fill_id": fill.fill_id,
        "market_id": fill.market_id,
        "sequence": str(fill.sequence),
        "order_id": fill.order_id,
        "counterparty_order_id": fill.counterparty_order_id,
        "liquidity": fill.liquidity,
        "side": fill.side,
        "price_atoms": str(fill.price_atoms),
        "base_atoms": str(fill.base_atoms),
        "quote_atoms": str(fill.quote_atoms),
        "created_at": fill.created_at.isoformat(),
        "settlement": {
            "state": fill.settlement_state,
            "reason": fill.settlement_reason,
            "signature": fill.settlement_signature,
        },
    }


def encode_cursor(seen: Mapping[str, int]) -> str:
    document = {"v": 1, "m": dict(sorted(seen.items()))}
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None) -> dict[str, int]:
    """The per-market sequences in ``text`` ({} for none); :class:`BadCursor` naming
    ``since`` for anything this node did not give out."""
    if not text:
        return {}
    if len(text) > MAX_CURSOR_CHARS:
        raise BadCursor("since", f"must be at most {MAX_CURSOR_CHARS} characters")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadCursor("since") from None
    if not isinstance(document, dict) or document.get("v") != 1:
        raise BadCursor("since")
    markets = document.get("m")
    if not isinstance(markets, dict):
        raise BadCursor("since")
    for market_id, sequence in markets.items():
        try:
            check_market_id("since", market_id)
        except MarketError:
            raise BadCursor("since") from None
        if type(sequence) is not int or not 0 <= sequence <= U64_MAX:
            raise BadCursor("since")
    return dict(markets)


def advance_cursor(seen: Mapping[str, int], fills: Sequence[MakerFill]) -> dict[str, int]:
    """``seen`` moved past ``fills``."""
    moved = dict(seen)
    for fill in fills:
        moved[fill.market_id] = max(moved.get(fill.market_id, -1), fill.sequence)
    return moved
