"""Attacks through the shared database on SettlementActor (issue 14), against a real
localnet (ticking slots), RpcRouter, BlockhashActor, and real SQLite and PostgreSQL.

An attacker who can write to the database (its credentials sit on every node) must
not be able to make the node move a maker's tokens beyond what the maker signed
(market.authorization): a fill row the orders do not allow, and an order row edited
after matching, are each refused before anything is signed: the settlement is
failed with the reason, no attempt is written, and no balance moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy import insert, update
from sqlalchemy.engine import Engine

import storage
from localnet import LocalnetServer
from localnet.fixtures import MintFixture
from market import sign_order
from storage.models import Fill, Order, Settlement, table_of
from storage.models import Market as MarketRow
from tests.conftest import Recorder
from tests.integration.actors.test_settlement_actor import SLOT_MS, Settler
from tests.integration.market.conftest import LOT_ATOMS, make_trade

pytestmark = [pytest.mark.localnet(slot_ms=SLOT_MS), pytest.mark.timeout(120)]

_FILLS, _ORDERS, _SETTLEMENTS = table_of(Fill), table_of(Order), table_of(Settlement)
_MARKETS = table_of(MarketRow)


@pytest.fixture
def desk(localnet: LocalnetServer, engine: Engine, recorder: Recorder) -> Iterator[Settler]:
    """A trade's market and both signed orders stored, nothing matched yet."""
    trade = make_trade(localnet)
    storage.insert_market(engine, trade.market)
    storage.store_order(engine, sign_order(trade.sell, trade.seller))
    storage.store_order(engine, sign_order(trade.buy, trade.buyer))
    settler = Settler(trade, engine, recorder, [])
    try:
        yield settler
    finally:
        settler.stop()


def _record_real_match(settler: Settler) -> None:
    trade, engine = settler.trade, settler.engine
    lease = storage.LeaseStore(engine, "matcher").acquire(
        storage.market_key(trade.market.market_id), 60
    )
    assert lease is not None
    remaining = {trade.sell.order_id: 5 * LOT_ATOMS, trade.buy.order_id: 0}
    storage.record_match(engine, lease, [trade.fill], remaining)


def _first_outcome(settler: Settler) -> Any:
    """The first thing the actor reports about the settlement: refused, confirmed or failed."""
    events = settler.recorder.wait_for(
        lambda events: any(getattr(e, "outcome", None) for e in events), timeout_s=60
    )
    return next(e for e in events if getattr(e, "outcome", None))


def _assert_refused_unsigned(settler: Settler, settlement_id: str, before: dict[str, int]) -> str:
    """The settlement failed as unauthorized, with no attempt ever written, and the
    balances did not move; its reason."""
    outcome = _first_outcome(settler)
    record = storage.get_settlement(settler.engine, settlement_id)
    assert record is not None
    assert settler.trade.balances() == before, "tokens moved"
    assert storage.list_attempts(settler.engine, settlement_id) == [], "a transaction was signed"
    assert outcome.outcome == "unauthorized"
    assert record.status == "failed"
    assert record.last_error is not None and record.last_error.startswith("unauthorized: ")
    assert settler.state().refused == 1
    assert storage.count_unauthorized_settlements(settler.engine) == 1
    return record.last_error


def test_a_forged_fill_row_at_a_thousand_times_the_price_is_never_signed(
    desk: Settler, engine: Engine, captured_logs: list[dict[str, Any]]
) -> None:
    """A fill row (and its pending settlement) inserted by hand between two real signed
    orders, at 1000 times the buy's limit price: the orders do not allow it, so the
    settlement is failed as unauthorized, naming the price, before any signing; the
    buyer's quote never moves."""
    trade = desk.trade
    forged_id = "ForgedFi11" + "1" * 34
    price = trade.buy.price_atoms * 1_000
    with storage.write_transaction(engine, "test.forge_fill") as connection:
        connection.execute(
            insert(_FILLS).values(
                id=forged_id,
                market_id=trade.market.market_id,
                maker_order_id=trade.sell.order_id,
                taker_order_id=trade.buy.order_id,
                price_atoms=price,
                base_atoms=2 * LOT_ATOMS,
                quote_atoms=price * 2,
                fencing_token=1,
                sequence=0,
            )
        )
        connection.execute(
            insert(_SETTLEMENTS).values(
                id=forged_id, fill_id=forged_id, market_id=trade.market.market_id
            )
        )
    before = trade.balances()

    desk.start()
    reason = _assert_refused_unsigned(desk, forged_id, before)

    assert "price_atoms" in reason
    (logged,) = [r for r in captured_logs if r["extra"].get("action") == "settlement.unauthorized"]
    assert logged["level"].name == "ERROR"
    assert logged["extra"]["settlement_id"] == forged_id
    assert logged["extra"]["taker_order_id"] == trade.buy.order_id


def test_an_order_edited_after_matching_is_never_signed(
    desk: Settler, engine: Engine, localnet: LocalnetServer
) -> None:
    """A real fill, then the buy order's row edited to receive the base tokens in the
    attacker's account: the order's stored terms no longer hash to its id (and the
    maker never signed them), so the settlement is refused unsigned and neither the
    seller's base nor the buyer's quote moves."""
    trade = desk.trade
    _record_real_match(desk)
    attacker = localnet.fixtures.fund_wallet()
    base = MintFixture(trade.market.base_mint, trade.market.base_decimals, Keypair())
    attacker_base = localnet.fixtures.create_token_account(attacker.pubkey(), base)
    with storage.write_transaction(engine, "test.edit_order") as connection:
        connection.execute(
            update(_ORDERS)
            .where(_ORDERS.c.id == trade.buy.order_id)
            .values(receive_account=str(attacker_base))
        )
    before = trade.balances()

    desk.start()
    reason = _assert_refused_unsigned(desk, trade.fill.fill_id, before)

    assert localnet.fixtures.token_balance(attacker_base) == 0
    assert trade.buy.order_id in reason


def test_a_fill_beyond_an_orders_size_is_never_signed(desk: Settler, engine: Engine) -> None:
    """A real fill of the buy's whole size, then a second fill row forged between the
    same two orders: each is within the prices, but the buy's fills would add up to
    more than its size. Neither is signed (the real one too: the database no longer
    says the buy was filled within its size)."""
    trade = desk.trade
    _record_real_match(desk)
    forged_id = "ForgedFi11" + "2" * 34
    with storage.write_transaction(engine, "test.forge_fill") as connection:
        connection.execute(
            insert(_FILLS).values(
                id=forged_id,
                market_id=trade.market.market_id,
                maker_order_id=trade.sell.order_id,
                taker_order_id=trade.buy.order_id,
                price_atoms=trade.fill.price_atoms,
                base_atoms=LOT_ATOMS,
                quote_atoms=trade.fill.price_atoms,
                fencing_token=1,
                sequence=1,
            )
        )
        connection.execute(
            insert(_SETTLEMENTS).values(
                id=forged_id, fill_id=forged_id, market_id=trade.market.market_id
            )
        )
    before = trade.balances()

    desk.start()
    desk.recorder.wait_for(
        lambda events: sum(bool(getattr(e, "outcome", None)) for e in events) >= 2, timeout_s=60
    )

    assert trade.balances() == before, "tokens moved"
    for settlement_id in (forged_id, trade.fill.fill_id):
        record = storage.get_settlement(engine, settlement_id)
        assert record is not None and record.status == "failed", record
        assert storage.list_attempts(engine, settlement_id) == []
    assert desk.state().refused == 2


def test_a_market_row_edited_before_matching_is_never_signed(
    desk: Settler, engine: Engine, captured_logs: list[dict[str, Any]]
) -> None:
    """The market's lot size edited to 1 atom in its row, and a fill row consistent with
    that edit (2 lots' base atoms, now 2*LOT lots at the buy's price: LOT times what
    the buyer signed for): the orders and the fill agree with the edited market, but
    its definition is no longer what the settlement authority signed, so the
    settlement is refused before any signing (the check of every attempt)."""
    trade = desk.trade
    with storage.write_transaction(engine, "test.tamper_market") as connection:
        connection.execute(
            update(_MARKETS).where(_MARKETS.c.id == trade.market.market_id).values(lot_size_atoms=1)
        )
    forged_id = "ForgedFi11" + "3" * 34
    price, base_atoms = trade.sell.price_atoms, 2 * LOT_ATOMS
    with storage.write_transaction(engine, "test.forge_fill") as connection:
        connection.execute(
            insert(_FILLS).values(
                id=forged_id,
                market_id=trade.market.market_id,
                maker_order_id=trade.sell.order_id,
                taker_order_id=trade.buy.order_id,
                price_atoms=price,
                base_atoms=base_atoms,
                quote_atoms=price * base_atoms,
                fencing_token=1,
                sequence=0,
            )
        )
        connection.execute(
            insert(_SETTLEMENTS).values(
                id=forged_id, fill_id=forged_id, market_id=trade.market.market_id
            )
        )
    before = trade.balances()

    desk.start()
    reason = _assert_refused_unsigned(desk, forged_id, before)

    assert "definition" in reason and trade.market.market_id in reason
    (logged,) = [r for r in captured_logs if r["extra"].get("action") == "settlement.unauthorized"]
    assert logged["extra"]["field"] == "definition_signature"
