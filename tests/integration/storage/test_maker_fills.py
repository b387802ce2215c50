"""storage.maker_fills on SQLite and PostgreSQL: the fills a maker asks about, with their
settlement states, a cursor that never skips a fill, and cancel-all."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from storage import confirm_settlement, get_order
from storage.maker_fills import cancel_open_orders, fills_of_maker, fills_of_order
from tests.integration.storage.test_pipeline_repositories import (  # the shared fixture
    LOT,
    Matched,
    _attempt,
    _claim,
    _record,
    matched,
)
from tests.signed_cancels import UNCHECKED

__all__ = ["matched"]  # the fixture, imported to be found by pytest


def test_an_orders_fills_name_the_counterparty_and_the_settlement_state(
    engine: Engine, matched: Matched
) -> None:
    """carol's buy crossed alice and bob: two fills, carol the taker, each pending; once
    one settles it is confirmed with its landing signature, the other still pending."""
    _record(engine, matched)
    fills = fills_of_order(engine, matched.carol.order_id)

    assert [(f.counterparty_order_id, f.liquidity, f.side, f.base_atoms) for f in fills] == [
        (matched.alice.order_id, "taker", "buy", 3 * LOT),
        (matched.bob.order_id, "taker", "buy", LOT),
    ]
    assert {f.settlement_state for f in fills} == {"pending"}

    queue, claim = _claim(engine)
    signature = _attempt(queue, claim)
    sent = {f.fill_id: f for f in fills_of_order(engine, matched.carol.order_id)}
    assert sent[str(claim.row_id)].settlement_state == "sent"
    confirm_settlement(queue, claim, signature, slot=7)

    after = {f.fill_id: f for f in fills_of_order(engine, matched.carol.order_id)}
    settled = after[str(claim.row_id)]
    assert (settled.settlement_state, settled.settlement_signature) == ("confirmed", signature)
    alice_side = fills_of_order(engine, matched.alice.order_id)
    assert [(f.liquidity, f.side, f.order_id) for f in alice_side] == [
        ("maker", "sell", matched.alice.order_id)
    ]


def test_a_makers_fills_page_by_cursor_without_skipping_or_repeating(
    engine: Engine, matched: Matched
) -> None:
    """Pages of one fill each, past the per-market sequence seen, give every fill once."""
    _record(engine, matched)
    carol = str(matched.carol.order.maker)
    seen: dict[str, int] = {}
    pages = []
    for _ in range(3):
        page = fills_of_maker(engine, carol, seen, limit=1)
        pages.append([fill.sequence for fill in page])
        for fill in page:
            seen[fill.market_id] = fill.sequence

    assert pages == [[0], [1], []]
    assert [f.order_id for f in fills_of_maker(engine, str(matched.bob.order.maker), {}, 10)] == [
        matched.bob.order_id
    ]


def test_cancel_all_cancels_the_makers_open_orders_stored_by_the_time_only(
    engine: Engine, matched: Matched
) -> None:
    """Only the maker's open orders of the market stored at or before the time are
    cancelled; a later cutoff in the past cancels nothing."""
    alice = matched.alice.order.maker
    past = datetime(2000, 1, 1, tzinfo=UTC)
    assert cancel_open_orders(engine, matched.market.market_id, str(alice), past, UNCHECKED) == []

    now = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
    cancelled = cancel_open_orders(engine, matched.market.market_id, str(alice), now, UNCHECKED)

    assert cancelled == [matched.alice.order_id]
    stored = get_order(engine, matched.alice.order_id)
    assert stored is not None and stored.status == "cancelled"
    bob = get_order(engine, matched.bob.order_id)
    assert bob is not None and bob.status == "open"
