"""The signing test vectors of docs/API.md, built from market/ (the one source).

``python -m tests.unit.api.vectors`` rewrites docs/api-vectors.json; the test in
this package fails when the checked-in file and market/ disagree, and the
TypeScript client's tests (clients/typescript) read the same file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from market import (
    CancelRequest,
    Market,
    Order,
    Side,
    market_definition_bytes,
    sign_cancel,
    sign_market,
    sign_order,
)
from market.cancel_all import CancelAllRequest, sign_cancel_all

VECTORS_PATH = Path(__file__).resolve().parents[3] / "docs" / "api-vectors.json"
# A fixed, public, worthless keypair: seed bytes 0x01..0x20.
SEED = bytes(range(1, 33))
MARKET_ID = "SOL-USDC"
EXPIRY_S = 1_900_000_000
SIGNED_AT_S = 1_800_000_000


def _account(tag: int) -> Pubkey:
    """A fixed token account address (any 32 bytes; intake checks it on chain)."""
    return Pubkey.from_bytes(bytes([tag]) * 32)


def _strings(document: dict[str, Any]) -> dict[str, Any]:
    """The JSON form with every integer as a decimal string (what the API returns)."""
    return {key: str(value) if isinstance(value, int) else value for key, value in document.items()}


def build() -> dict[str, Any]:
    maker = Keypair.from_seed(SEED)
    quote_account, base_account = _account(7), _account(9)
    buy = Order(
        market_id=MARKET_ID,
        side=Side.BUY,
        price_atoms=25_000_000,
        size_atoms=3_000_000,
        maker=maker.pubkey(),
        pay_account=quote_account,
        receive_account=base_account,
        client_order_id=1,
        expiry_s=EXPIRY_S,
        nonce=2**53 + 1,
    )
    sell = Order(
        market_id=MARKET_ID,
        side=Side.SELL,
        price_atoms=26_000_000,
        size_atoms=2**64 - 1,
        maker=maker.pubkey(),
        pay_account=base_account,
        receive_account=quote_account,
        client_order_id=2,
        expiry_s=EXPIRY_S,
        nonce=42,
    )
    signed_buy, signed_sell = sign_order(buy, maker), sign_order(sell, maker)
    cancel = sign_cancel(CancelRequest(buy.order_id, maker.pubkey(), SIGNED_AT_S), maker)
    cancel_all = sign_cancel_all(CancelAllRequest(MARKET_ID, maker.pubkey(), SIGNED_AT_S), maker)
    # The market's definition, signed by its settlement authority (here the same keypair).
    market = Market(
        market_id=MARKET_ID,
        base_mint=_account(11),
        base_decimals=9,
        quote_mint=_account(12),
        quote_decimals=6,
        lot_size_atoms=1_000_000,
        tick_size_atoms=10,
        settlement_authority=maker.pubkey(),
        fee_payer=maker.pubkey(),
    )
    vectors: dict[str, Any] = {
        "keypair": {
            "seed_hex": SEED.hex(),
            "public_key": str(maker.pubkey()),
            "secret_key_base58": str(maker),
        },
        "orders": [
            {
                "name": name,
                "json": _strings(signed.to_json()),
                "bytes_hex": signed.order.encode().hex(),
                "order_id": signed.order_id,
                "signature": str(signed.signature),
            }
            for name, signed in (("buy", signed_buy), ("sell", signed_sell))
        ],
        "cancel": {
            "json": _strings(cancel.to_json()),
            "bytes_hex": cancel.request.encode().hex(),
            "signature": str(cancel.signature),
        },
        "cancel_all": {
            "json": _strings(cancel_all.to_json()),
            "bytes_hex": cancel_all.request.encode().hex(),
            "signature": str(cancel_all.signature),
        },
        "market": {
            "json": market.to_json(),
            "bytes_hex": market_definition_bytes(market).hex(),
            "signature": str(sign_market(market, maker)),
        },
    }
    return vectors


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    VECTORS_PATH.write_text(render())
    print(f"wrote {VECTORS_PATH}")
