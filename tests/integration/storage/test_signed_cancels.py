"""Signed cancels in the database (revision 0009), on both engines: stored with the
order they cancel, checked when an order in play carries one, and what releasing a
quarantined order puts back."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair
from sqlalchemy import update
from sqlalchemy.engine import Engine

import market as domain
import storage
from storage.authorization import authorized_orders, cancel_refusal_of
from storage.models import Order as OrderRow
from tests.signed_cancels import maker_cancel
from tests.unit.market.factories import make_market

LOT = 1_000


@pytest.fixture
def market(engine: Engine) -> domain.Market:
    market = make_market()
    storage.insert_market(engine, market)
    return market


def _now_s(engine: Engine) -> int:
    with storage.read_transaction(engine, "test.now") as connection:
        return int(storage.read_db_now(connection).timestamp())


def _order(engine: Engine, market: domain.Market, maker: Keypair) -> storage.StoredOrder:
    terms = domain.Order(
        market_id=market.market_id,
        side=domain.Side.SELL,
        price_atoms=100,
        size_atoms=2 * LOT,
        maker=maker.pubkey(),
        pay_account=Keypair().pubkey(),
        receive_account=Keypair().pubkey(),
        client_order_id=1,
        expiry_s=_now_s(engine) + 3_600,
        nonce=1,
    )
    return storage.store_order(engine, domain.sign_order(terms, maker))


def _set(engine: Engine, order_id: str, **values: object) -> None:
    """A write by someone with the database's credentials."""
    with storage.write_transaction(engine, "test.tamper") as connection:
        connection.execute(update(OrderRow).where(OrderRow.id == order_id).values(**values))


def _get(engine: Engine, order_id: str) -> storage.StoredOrder:
    found = storage.get_order(engine, order_id)
    assert found is not None
    return found


def test_a_cancel_is_stored_with_the_order_at_the_databases_time(
    engine: Engine, market: domain.Market
) -> None:
    maker = Keypair()
    order = _order(engine, market, maker)
    record = maker_cancel(order.order_id, maker, _now_s(engine))
    assert storage.mark_order_cancelled(engine, order.order_id, record)
    assert not storage.mark_order_cancelled(engine, order.order_id, record)  # already

    stored = _get(engine, order.order_id)
    assert (stored.status, stored.cancel_signed) == ("cancelled", record)
    assert stored.cancelled_at is not None
    assert abs(stored.cancelled_at.timestamp() - _now_s(engine)) < 60
    assert cancel_refusal_of(stored) is None


def test_an_order_reopened_after_its_makers_cancel_is_cancelled_again_not_trusted(
    engine: Engine, market: domain.Market
) -> None:
    maker = Keypair()
    order = _order(engine, market, maker)
    storage.mark_order_cancelled(
        engine, order.order_id, maker_cancel(order.order_id, maker, _now_s(engine))
    )
    _set(engine, order.order_id, status="open")

    assert authorized_orders(engine, market, [_get(engine, order.order_id)]) == []
    assert _get(engine, order.order_id).status == "cancelled"
    assert storage.list_quarantined(engine) == []


def test_an_order_in_play_with_a_record_that_does_not_hold_is_quarantined(
    engine: Engine, market: domain.Market
) -> None:
    order = _order(engine, market, Keypair())
    _set(engine, order.order_id, cancel_signed="garbage", cancelled_at=storage.db_now())

    assert authorized_orders(engine, market, [_get(engine, order.order_id)]) == []
    assert _get(engine, order.order_id).status == "quarantined"
    (entry,) = storage.list_quarantined(engine)
    assert "stored cancel that does not hold" in entry.reason


def _quarantine(engine: Engine, order: storage.StoredOrder, reason: str) -> int:
    entry = storage.QuarantineEntry("order", order.order_id, reason, {}, order.order.market_id)
    with storage.write_transaction(engine, "test.quarantine") as connection:
        storage.quarantine_rows(connection, [entry])
    (record,) = [r for r in storage.list_quarantined(engine) if r.row_id == order.order_id]
    return record.id


def test_releasing_an_order_puts_it_back_where_it_really_stands(
    engine: Engine, market: domain.Market
) -> None:
    """A forged cancel released: back in play (unfunded, checked afresh) with the forged
    record cleared. An order its maker did cancel: cancelled. One filled: filled (before,
    every released order went back as unfunded, a filled one too)."""
    maker = Keypair()
    forged = _order(engine, market, maker)
    _set(
        engine,
        forged.order_id,
        status="cancelled",
        cancel_signed="forged",
        cancelled_at=storage.db_now(),
    )
    real = _order(engine, market, other := Keypair())
    storage.mark_order_cancelled(
        engine, real.order_id, maker_cancel(real.order_id, other, _now_s(engine))
    )
    filled = _order(engine, market, Keypair())
    _set(engine, filled.order_id, status="filled", remaining_atoms=0)

    for order in (forged, real, filled):
        record_id = _quarantine(engine, order, "test")
        assert storage.release_quarantined(engine, record_id, released_by="test")

    back = [_get(engine, o.order_id) for o in (forged, real, filled)]
    assert [o.status for o in back] == ["unfunded", "cancelled", "filled"]
    assert (back[0].cancel_signed, back[0].cancelled_at) == (None, None)
    assert back[1].cancel_signed is not None
