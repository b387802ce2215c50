"""market.authorization: each check that keeps the node from signing a settlement, or
resting an order, that the makers' signatures do not authorize."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from solders.pubkey import Pubkey
from solders.signature import Signature

from market import (
    Book,
    CancelRequest,
    Fill,
    SettlementEvidence,
    Side,
    SignedOrder,
    StoredFill,
    Unauthorized,
    VerifiedSignatures,
    authorize_settlement,
    cancel_refusal,
    match,
    order_refusal,
    settlement_instructions,
    settlement_refusal,
    sign_cancel,
    signing,
)

from .factories import LOT_ATOMS, MAKERS, NOW_S, TICK_ATOMS, make_market, make_order, pubkey, signed

MARKET = make_market()


def _trade() -> tuple[SignedOrder, SignedOrder, Fill]:
    """A resting sell of 5 lots at 100 ticks hit by a buy of 3 lots at 102 ticks."""
    sell = signed(make_order(Side.SELL, price_atoms=100 * TICK_ATOMS, maker=MAKERS[0]))
    buy = signed(make_order(Side.BUY, 102 * TICK_ATOMS, 3 * LOT_ATOMS, maker=MAKERS[1]))
    book = match(Book.empty(MARKET), sell.order, now_s=NOW_S).book
    (fill,) = match(book, buy.order, now_s=NOW_S).fills
    return sell, buy, fill


def _stored(fill: Fill, created_at_s: float = NOW_S + 1.5) -> StoredFill:
    return StoredFill(
        fill.fill_id,
        fill.market_id,
        fill.maker_order_id,
        fill.taker_order_id,
        fill.price_atoms,
        fill.base_atoms,
        fill.quote_atoms,
        created_at_s,
    )


def _evidence(
    sell: SignedOrder, buy: SignedOrder, fill: Fill, **changes: Any
) -> SettlementEvidence:
    fields: dict[str, Any] = {
        "stored_fill": _stored(fill),
        "orders": {sell.order_id: sell, buy.order_id: buy},
        "unreadable": {},
        "filled_atoms": {sell.order_id: fill.base_atoms, buy.order_id: fill.base_atoms},
    }
    fields.update(changes)
    return SettlementEvidence(**fields)


def _refusal(fill: Fill, evidence: SettlementEvidence) -> Unauthorized | None:
    return settlement_refusal(MARKET, fill, evidence, verified=VerifiedSignatures())


def test_a_fill_within_both_signed_orders_is_authorized() -> None:
    """A fill made by matching two signed orders, as the database holds it, passes."""
    sell, buy, fill = _trade()
    assert _refusal(fill, _evidence(sell, buy, fill)) is None
    authorize_settlement(MARKET, fill, _evidence(sell, buy, fill))


def test_the_transaction_moves_only_between_the_accounts_the_orders_name() -> None:
    """What is checked (the fill's accounts) is what the transaction moves: base from
    the seller's pay account to the buyer's receive account, quote from the buyer's
    pay account to the seller's receive account, in the market's mints."""
    sell, buy, fill = _trade()
    legs = settlement_instructions(MARKET, fill, 0)[2:4]
    base, quote = ([meta.pubkey for meta in leg.accounts[:3]] for leg in legs)
    assert base == [sell.order.pay_account, MARKET.base_mint, buy.order.receive_account]
    assert quote == [buy.order.pay_account, MARKET.quote_mint, sell.order.receive_account]


def _forged_signature(order: SignedOrder) -> SignedOrder:
    return SignedOrder(order.order, MAKERS[3].sign_message(order.order.encode()))


# One case per refusal, laid out as a table by hand: kept as written.
REFUSALS = {
    "no fill row": (lambda s, b, f: (f, _evidence(s, b, f, stored_fill=None)), "fill_id"),
    "fill row price changed": (
        lambda s, b, f: (f, _evidence(s, b, f, stored_fill=replace(_stored(f), price_atoms=1))),
        "price_atoms",
    ),
    "order row gone": (
        lambda s, b, f: (f, _evidence(s, b, f, orders={s.order_id: s})),
        "taker_order_id",
    ),
    "order row unreadable": (
        lambda s, b, f: (
            f,
            _evidence(s, b, f, orders={s.order_id: s}, unreadable={b.order_id: "x"}),
        ),
        "taker_order_id",
    ),
    "order terms edited": (
        lambda s, b, f: (
            f,
            _evidence(
                s,
                b,
                f,
                orders={
                    s.order_id: s,
                    b.order_id: replace(b, order=replace(b.order, price_atoms=10**6)),
                },
            ),
        ),
        "order_id",
    ),
    "signature not the maker's": (
        lambda s, b, f: (
            f,
            _evidence(s, b, f, orders={s.order_id: s, b.order_id: _forged_signature(b)}),
        ),
        "signature",
    ),
    "expired at the fill's time": (
        lambda s, b, f: (f, _evidence(s, b, f, stored_fill=_stored(f, b.order.expiry_s))),
        "expiry_s",
    ),
    "fill says the wrong taker side": (
        lambda s, b, f: (replace(f, taker_side=Side.SELL), _evidence(s, b, f)),
        "taker_side",
    ),
    "price above the buy's limit": (
        lambda s, b, f: _both(f, s, b, price_atoms=103 * TICK_ATOMS, quote_atoms=309 * TICK_ATOMS),
        "price_atoms",
    ),
    "price below the sell's limit": (
        lambda s, b, f: _both(f, s, b, price_atoms=99 * TICK_ATOMS, quote_atoms=297 * TICK_ATOMS),
        "price_atoms",
    ),
    "quote not price times lots": (
        lambda s, b, f: _both(f, s, b, quote_atoms=f.quote_atoms * 1_000),
        "quote_atoms",
    ),
    "base not whole lots": (
        lambda s, b, f: _both(f, s, b, base_atoms=f.base_atoms + 1),
        "base_atoms",
    ),
    "fills add up past the buy's size": (
        lambda s, b, f: (
            f,
            _evidence(
                s,
                b,
                f,
                filled_atoms={s.order_id: f.base_atoms, b.order_id: f.base_atoms + LOT_ATOMS},
            ),
        ),
        "base_atoms",
    ),
    "buyer's receive account not the buy's": (
        lambda s, b, f: (replace(f, buyer_receive_account=pubkey(99)), _evidence(s, b, f)),
        "buyer_receive_account",
    ),
    "seller's pay account not the sell's": (
        lambda s, b, f: (replace(f, seller_pay_account=pubkey(99)), _evidence(s, b, f)),
        "seller_pay_account",
    ),
    "another market's fill": (
        lambda s, b, f: (replace(f, market_id="ETH-USDC"), _evidence(s, b, f)),
        "market_id",
    ),
}


def _both(
    f: Fill, s: SignedOrder, b: SignedOrder, **changes: Any
) -> tuple[Fill, SettlementEvidence]:
    """The fill and its row changed alike (a forged fill row, the settlement built from it)."""
    forged = replace(f, **changes)
    return forged, _evidence(s, b, forged)


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_way_outside_the_signed_terms_is_refused_naming_the_field(case: str) -> None:
    """Every check of the module docstring refuses its case, naming the field at fault."""
    build, field = REFUSALS[case]
    sell, buy, fill = _trade()
    refusal = _refusal(*build(sell, buy, fill))
    assert refusal is not None, case
    assert refusal.field == field, refusal
    with pytest.raises(Unauthorized):
        authorize_settlement(MARKET, *build(sell, buy, fill))


def test_a_signature_is_verified_once_per_process_and_only_for_its_terms() -> None:
    """The cache remembers a verified (id, signature) pair: the second check of the same
    settlement verifies nothing; a forged signature is never remembered."""
    sell, buy, fill = _trade()
    verified = VerifiedSignatures()
    assert settlement_refusal(MARKET, fill, _evidence(sell, buy, fill), verified=verified) is None
    assert len(verified) == 2
    assert settlement_refusal(MARKET, fill, _evidence(sell, buy, fill), verified=verified) is None
    forged = _forged_signature(buy)
    assert order_refusal(buy.order_id, forged, MARKET, verified=verified) is not None
    assert len(verified) == 2


def test_an_order_for_another_market_or_off_its_ticks_never_rests() -> None:
    """order_refusal: the market and the market's numbers, besides id and signature."""
    good = signed(make_order())
    assert order_refusal(good.order_id, good, MARKET) is None
    other = make_market(market_id="ETH-USDC")
    assert order_refusal(good.order_id, good, other).field == "market_id"  # type: ignore[union-attr]
    odd = signed(make_order(price_atoms=TICK_ATOMS * 100 + 1))
    assert order_refusal(odd.order_id, odd, MARKET).field == "price_atoms"  # type: ignore[union-attr]
    assert order_refusal("x" * 44, good, MARKET).field == "order_id"  # type: ignore[union-attr]


def test_a_cancel_from_the_database_needs_the_makers_signature_and_freshness() -> None:
    """cancel_refusal: signed by the order's maker, within the window of the time it was
    stored; a forged or stale cancel is refused."""
    order = make_order(maker=MAKERS[0])
    request = CancelRequest(order.order_id, order.maker, NOW_S)
    good = sign_cancel(request, MAKERS[0])
    assert cancel_refusal(good, order, stored_at_s=NOW_S + 1) is None
    forged = replace(good, signature=Signature(bytes(64)))
    assert cancel_refusal(forged, order, stored_at_s=NOW_S + 1).field == "signature"  # type: ignore[union-attr]
    stale = cancel_refusal(good, order, stored_at_s=NOW_S + 3_600)
    assert stale is not None and stale.field == "timestamp_s"


def test_an_order_verified_at_intake_is_not_verified_again_by_the_book_or_the_settlement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Intake's checks (its rate limit's is_signed_by_maker, validate_order's verify) and
    the later checks with their own caches (the book's order_refusal, the settlement's)
    verify one order's signature once in all; a forged signature every time, never
    remembered. Before: each of the four verified it again."""
    calls: list[str] = []

    def counting(signature: Signature, maker: Pubkey, message: bytes) -> bool:
        calls.append(str(maker))
        return bool(signature.verify(maker, message))

    monkeypatch.setattr(signing, "_verify", counting)
    monkeypatch.setattr(signing, "_SIGNED", set())  # what earlier tests verified is forgotten
    sell, buy, fill = _trade()
    assert buy.is_signed_by_maker()
    buy.verify()
    assert order_refusal(buy.order_id, buy, MARKET, verified=VerifiedSignatures()) is None
    assert (
        settlement_refusal(MARKET, fill, _evidence(sell, buy, fill), verified=VerifiedSignatures())
        is None
    )
    assert calls.count(str(buy.order.maker)) == 1
    forged = _forged_signature(buy)
    assert not forged.is_signed_by_maker()
    assert order_refusal(buy.order_id, forged, MARKET, verified=VerifiedSignatures()) is not None
    assert len(calls) == 2 + 2  # sell once, buy once, the forged one each time
