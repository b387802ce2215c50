"""Property (hypothesis): for random books and a random tampering of one stored field,
market.authorization never accepts a settlement outside the makers' signed terms, and
accepts every settlement of an untampered database.

The model follows the node: the database holds order rows and fill rows; the fill a
settlement is built from is the fill row with its orders' makers and accounts (as
``storage.fill_from_row`` joins them); the check reads the same rows. An oracle
written independently of the module decides "within the signed terms" from the
orders as the makers really signed them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.signature import Signature

from market import (
    Book,
    Fill,
    SettlementEvidence,
    Side,
    SignedOrder,
    StoredFill,
    VerifiedSignatures,
    match,
    settlement_refusal,
)

from .factories import LOT_ATOMS, MAKERS, NOW_S, TICK_ATOMS, make_market, make_order, pubkey, signed

MARKET = make_market()
FILL_TIME_S = NOW_S + 10.0


@dataclass
class Database:
    """Rows as stored: order rows by id (the signed order as the row spells it), fill rows."""

    orders: dict[str, SignedOrder]
    fills: list[StoredFill]


def _book(draw: st.DrawFn) -> tuple[dict[str, SignedOrder], list[Fill]]:
    book = Book.empty(MARKET)
    originals: dict[str, SignedOrder] = {}
    fills: list[Fill] = []
    for index in range(draw(st.integers(2, 12))):
        order = signed(
            make_order(
                draw(st.sampled_from(Side)),
                price_atoms=draw(st.integers(98, 102)) * TICK_ATOMS,
                size_atoms=draw(st.integers(1, 6)) * LOT_ATOMS,
                maker=draw(st.sampled_from(MAKERS)),
                nonce=index,
                expiry_s=NOW_S + draw(st.integers(5, 60)),  # some expire before FILL_TIME_S
            )
        )
        originals[order.order_id] = order
        result = match(book, order.order, now_s=NOW_S)
        book = result.book
        fills.extend(result.fills)
    return originals, fills


_ORDER_FIELDS = (
    "price_atoms",
    "size_atoms",
    "side",
    "maker",
    "pay_account",
    "receive_account",
    "expiry_s",
    "client_order_id",
    "nonce",
)
_FILL_FIELDS = (
    "price_atoms",
    "base_atoms",
    "quote_atoms",
    "created_at_s",
    "swap_orders",
    "priced",
)


def _other_value(draw: st.DrawFn, name: str, value: Any) -> Any:
    if name == "side":
        return value.opposite
    if name in ("maker", "pay_account", "receive_account"):
        return pubkey(draw(st.integers(100, 120)))
    if name == "created_at_s":
        return float(draw(st.integers(NOW_S - 100, NOW_S + 100)))
    delta = draw(st.sampled_from([-LOT_ATOMS, -TICK_ATOMS, -1, 1, TICK_ATOMS, LOT_ATOMS, 10**6]))
    return max(0, value + delta) if value + delta != value else value + 1


@st.composite
def tampered(draw: st.DrawFn) -> tuple[dict[str, SignedOrder], Database, str]:
    """(the orders as signed, the database after one tampering, what was tampered)."""
    originals, fills = _book(draw)
    database = Database(dict(originals), [_row(fill) for fill in fills])
    what = draw(st.sampled_from(["nothing", "order", "signature", "new order", "fill"]))
    if what == "nothing" or not fills:
        return originals, database, "nothing"
    row = draw(st.sampled_from(database.fills))
    if what == "fill":
        name = draw(st.sampled_from(_FILL_FIELDS))
        index = database.fills.index(row)
        if name == "swap_orders":
            changed = replace(
                row, maker_order_id=row.taker_order_id, taker_order_id=row.maker_order_id
            )
        elif name == "priced":  # another price, the quote amount made to agree with it
            price = row.price_atoms + draw(st.sampled_from([-2, -1, 1, 2, 1_000])) * TICK_ATOMS
            changed = replace(
                row, price_atoms=price, quote_atoms=price * (row.base_atoms // LOT_ATOMS)
            )
        else:
            changed = replace(row, **{name: _other_value(draw, name, getattr(row, name))})
        database.fills[index] = changed
        return originals, database, f"fill.{name}"
    order_id = draw(st.sampled_from([row.maker_order_id, row.taker_order_id]))
    stored = database.orders[order_id]
    if what == "signature":
        database.orders[order_id] = replace(
            stored, signature=Signature(draw(st.binary(min_size=64, max_size=64)))
        )
        return originals, database, "order.signature"
    name = draw(st.sampled_from(_ORDER_FIELDS))
    terms = replace(stored.order, **{name: _other_value(draw, name, getattr(stored.order, name))})
    if what == "order":  # the row edited in place: its id stays
        database.orders[order_id] = SignedOrder(terms, stored.signature)
        return originals, database, f"order.{name}"
    # A new row with an id that matches its terms, a signature by someone else, the fill
    # repointed at it.
    forged = SignedOrder(terms, Keypair().sign_message(terms.encode()))
    database.orders[forged.order_id] = forged
    index = database.fills.index(row)
    key = "maker_order_id" if row.maker_order_id == order_id else "taker_order_id"
    database.fills[index] = replace(row, **{key: forged.order_id})
    return originals, database, f"new order.{name}"


def _row(fill: Fill) -> StoredFill:
    return StoredFill(
        fill.fill_id,
        fill.market_id,
        fill.maker_order_id,
        fill.taker_order_id,
        fill.price_atoms,
        fill.base_atoms,
        fill.quote_atoms,
        FILL_TIME_S,
    )


def _settlement_fill(database: Database, row: StoredFill) -> Fill | None:
    """The fill a settlement is built from: the row joined with its orders' rows."""
    maker, taker = database.orders.get(row.maker_order_id), database.orders.get(row.taker_order_id)
    if maker is None or taker is None:
        return None
    buy, sell = (taker, maker) if taker.order.side is Side.BUY else (maker, taker)
    return Fill(
        fill_id=row.fill_id,
        market_id=row.market_id,
        sequence=0,
        maker_order_id=row.maker_order_id,
        taker_order_id=row.taker_order_id,
        taker_side=taker.order.side,
        price_atoms=row.price_atoms,
        base_atoms=row.base_atoms,
        quote_atoms=row.quote_atoms,
        buyer=buy.order.maker,
        seller=sell.order.maker,
        buyer_pay_account=buy.order.pay_account,
        buyer_receive_account=buy.order.receive_account,
        seller_pay_account=sell.order.pay_account,
        seller_receive_account=sell.order.receive_account,
    )


def _evidence(database: Database, row: StoredFill) -> SettlementEvidence:
    filled: dict[str, int] = {}
    for other in database.fills:
        for order_id in (other.maker_order_id, other.taker_order_id):
            filled[order_id] = filled.get(order_id, 0) + other.base_atoms
    ids = (row.maker_order_id, row.taker_order_id)
    return SettlementEvidence(
        row,
        {oid: database.orders[oid] for oid in ids if oid in database.orders},
        {},
        {oid: filled.get(oid, 0) for oid in ids},
    )


def _within_signed_terms(
    fill: Fill, originals: dict[str, SignedOrder], database: Database, time_s: float
) -> bool:
    """The oracle: the transfers of ``fill`` are what the orders, as signed, allow."""
    maker, taker = originals.get(fill.maker_order_id), originals.get(fill.taker_order_id)
    if maker is None or taker is None:
        return False
    if maker.order.side == taker.order.side or fill.taker_side != taker.order.side:
        return False
    buy, sell = (
        (taker.order, maker.order) if taker.order.side is Side.BUY else (maker.order, taker.order)
    )
    lots = fill.base_atoms // LOT_ATOMS
    used = {
        oid: sum(
            r.base_atoms for r in database.fills if oid in (r.maker_order_id, r.taker_order_id)
        )
        for oid in (fill.maker_order_id, fill.taker_order_id)
    }
    return (
        sell.price_atoms <= fill.price_atoms <= buy.price_atoms
        and fill.base_atoms > 0
        and fill.base_atoms % LOT_ATOMS == 0
        and fill.quote_atoms == fill.price_atoms * lots
        and (fill.buyer, fill.buyer_pay_account, fill.buyer_receive_account)
        == (buy.maker, buy.pay_account, buy.receive_account)
        and (fill.seller, fill.seller_pay_account, fill.seller_receive_account)
        == (sell.maker, sell.pay_account, sell.receive_account)
        and used[fill.maker_order_id] <= maker.order.size_atoms
        and used[fill.taker_order_id] <= taker.order.size_atoms
        and time_s < buy.expiry_s
        and time_s < sell.expiry_s
        and fill.market_id == buy.market_id == sell.market_id == MARKET.market_id
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tampered())
def test_no_settlement_outside_the_signed_terms_is_ever_accepted(
    case: tuple[dict[str, SignedOrder], Database, str],
) -> None:
    """Every settlement the check accepts is within the orders as signed; with nothing
    tampered (and every order alive at the fill's time) every settlement is accepted;
    an order row edited in place or a forged signature is always refused."""
    originals, database, what = case
    verified = VerifiedSignatures()
    for row in database.fills:
        fill = _settlement_fill(database, row)
        if fill is None:
            continue
        accepted = (
            settlement_refusal(MARKET, fill, _evidence(database, row), verified=verified) is None
        )
        within = _within_signed_terms(fill, originals, database, row.created_at_s)
        assert not accepted or within, (what, row)
        if what == "nothing":
            assert accepted == within, (what, row)
        touched = originals.keys() - database.orders.keys() or {
            oid for oid in originals if database.orders[oid] != originals[oid]
        }
        if what.startswith("order") and touched & {row.maker_order_id, row.taker_order_id}:
            assert not accepted, (what, row)
