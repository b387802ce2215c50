"""Deterministic keys, a market and orders for the market/ unit tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from market import Market, Order, Side, SignedOrder, sign_market, sign_order

NOW_S = 1_700_000_000
LOT_ATOMS = 1_000
TICK_ATOMS = 10


def keypair(seed: int) -> Keypair:
    """The same keypair every run, so vectors and ids can be pinned."""
    return Keypair.from_seed(bytes([seed]) * 32)


def pubkey(seed: int) -> Pubkey:
    return Pubkey(bytes([seed]) * 32)


BASE_MINT, QUOTE_MINT = pubkey(201), pubkey(202)
AUTHORITY, FEE_PAYER = keypair(203), keypair(204)
MAKERS = tuple(keypair(seed) for seed in range(1, 5))


def make_market(*, authority: Keypair | None = None, signed: bool = True, **changes: Any) -> Market:
    """The test market; its definition signed by ``authority`` (default: AUTHORITY, when
    it is the settlement authority) unless ``signed`` is False."""
    fields: dict[str, Any] = {
        "market_id": "SOL-USDC",
        "base_mint": BASE_MINT,
        "base_decimals": 9,
        "quote_mint": QUOTE_MINT,
        "quote_decimals": 6,
        "lot_size_atoms": LOT_ATOMS,
        "tick_size_atoms": TICK_ATOMS,
        "settlement_authority": AUTHORITY.pubkey(),
        "fee_payer": FEE_PAYER.pubkey(),
    }
    fields.update(changes)
    market = Market(**fields)
    if authority is None and market.settlement_authority == AUTHORITY.pubkey():
        authority = AUTHORITY
    if not signed or authority is None:
        return market
    return replace(market, definition_signature=sign_market(market, authority))


def accounts_of(maker: Pubkey, side: Side) -> tuple[Pubkey, Pubkey]:
    """(pay, receive) token accounts of ``maker``: made-up addresses, stable per maker."""
    base, quote = (
        Pubkey.create_with_seed(maker, "base", BASE_MINT),
        Pubkey.create_with_seed(maker, "quote", QUOTE_MINT),
    )
    return (quote, base) if side is Side.BUY else (base, quote)


def make_order(
    side: Side = Side.BUY,
    price_atoms: int = 100 * TICK_ATOMS,
    size_atoms: int = 5 * LOT_ATOMS,
    maker: Keypair | None = None,
    **changes: Any,
) -> Order:
    maker_key = (maker or MAKERS[0]).pubkey()
    pay, receive = accounts_of(maker_key, side)
    order = Order(
        market_id="SOL-USDC",
        side=side,
        price_atoms=price_atoms,
        size_atoms=size_atoms,
        maker=maker_key,
        pay_account=pay,
        receive_account=receive,
        client_order_id=7,
        expiry_s=NOW_S + 3_600,
        nonce=1,
    )
    return replace(order, **changes)


def signed(order: Order, maker: Keypair | None = None) -> SignedOrder:
    keys = {key.pubkey(): key for key in MAKERS}
    return sign_order(order, maker or keys[order.maker])


def token_account_data(
    mint: Pubkey,
    owner: Pubkey,
    amount: int,
    delegate: Pubkey | None = None,
    state: int = 1,
    delegated_amount: int = 0,
    is_native: int | None = None,
    close_authority: Pubkey | None = None,
) -> bytes:
    """An SPL Token account's 165 bytes, written out field by field (independently of the
    decoder's struct layout)."""

    def option_key(key: Pubkey | None) -> bytes:
        return b"\1\0\0\0" + bytes(key) if key else b"\0" * 36

    def option_u64(value: int | None) -> bytes:
        return b"\0" * 12 if value is None else b"\1\0\0\0" + value.to_bytes(8, "little")

    return b"".join(
        [
            bytes(mint),
            bytes(owner),
            amount.to_bytes(8, "little"),
            option_key(delegate),
            bytes([state]),
            option_u64(is_native),
            delegated_amount.to_bytes(8, "little"),
            option_key(close_authority),
        ]
    )
