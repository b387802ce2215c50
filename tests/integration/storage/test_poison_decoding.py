"""Decoding stored rows one by one, on both engines: a malformed row is named, skipped by
the hot path's reads and quarantined; the rows around it are read as before."""

from __future__ import annotations

import time

import pytest
from solders.keypair import Keypair
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Engine

import market as domain
import storage
from storage.chain_cache import upsert_account_snapshots
from storage.models import InputFailure, Order, OrderStateCache, table_of
from storage.orders import open_orders_in, orders_by_id, quarantine_orders

_ORDERS, _CACHE, _FAILURES = table_of(Order), table_of(OrderStateCache), table_of(InputFailure)


def _market(engine: Engine) -> domain.Market:
    authority = Keypair()
    market = domain.Market(
        market_id="m0",
        base_mint=Keypair().pubkey(),
        quote_mint=Keypair().pubkey(),
        base_decimals=6,
        quote_decimals=6,
        settlement_authority=authority.pubkey(),
        lot_size_atoms=1,
        tick_size_atoms=1,
        fee_payer=Keypair().pubkey(),
    )
    storage.insert_market(engine, market, authority=authority)
    return market


def _order(engine: Engine, market: domain.Market, nonce: int, price_atoms: int = 100) -> str:
    maker = Keypair()
    order = domain.Order(
        market_id=market.market_id,
        side=domain.Side.SELL,
        price_atoms=price_atoms,
        size_atoms=10,
        maker=maker.pubkey(),
        pay_account=Keypair().pubkey(),
        receive_account=Keypair().pubkey(),
        client_order_id=nonce,
        expiry_s=int(time.time()) + 3600,
        nonce=nonce,
    )
    return storage.store_order(engine, domain.sign_order(order, maker)).order_id


def _raw(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as connection:
        connection.execute(text(sql), params)


def _bad_amount(engine: Engine) -> str:
    return "abc" if engine.dialect.name == "sqlite" else "-5"


def test_a_malformed_order_is_skipped_by_every_read_and_quarantined_once(engine: Engine) -> None:
    """An order whose price is not an amount: the open orders, the book and the list
    leave it out (the others are read), get_order raises MalformedRow naming the field,
    and it is quarantined once, its status set so the hot path no longer reads it."""
    market = _market(engine)
    good, bad = _order(engine, market, 1), _order(engine, market, 2)
    _raw(engine, "UPDATE orders SET price_atoms = :v WHERE id = :id", v=_bad_amount(engine), id=bad)
    malformed: list[storage.MalformedRow] = []
    with storage.read_transaction(engine) as connection:
        assert [o.order_id for o in open_orders_in(connection, "m0", malformed=malformed)] == [good]
        with pytest.raises(storage.MalformedRow):
            open_orders_in(connection, "m0")
        assert list(orders_by_id(connection, [good, bad], malformed=malformed)) == [good]
    assert [(e.kind, e.row_id) for e in malformed] == [("order", bad)] * 2
    assert "price_atoms" in malformed[0].reason
    assert quarantine_orders(engine, malformed) == 1
    assert storage.count_quarantined(engine) == {"order": 1}
    assert [o.order_id for o in storage.list_open_orders(engine, "m0")] == [good]
    assert [r.order_id for r in storage.load_book(engine, market).asks] == [good]
    with pytest.raises(storage.MalformedRow, match="price_atoms"):
        storage.get_order(engine, bad)
    [record] = storage.list_quarantined(engine)
    assert record.row_id == bad and record.market_id == "m0"


def test_an_edited_order_is_named_as_edited_and_left_out_of_the_book(engine: Engine) -> None:
    """Terms changed in place (a valid size, but not the signed one): the book loads
    without it and the quarantine says its terms no longer hash to its id."""
    market = _market(engine)
    good, edited = _order(engine, market, 1), _order(engine, market, 2, price_atoms=200)
    with engine.begin() as connection:
        connection.execute(update(_ORDERS).where(_ORDERS.c.id == edited).values(size_atoms=20))
    book = storage.load_book(engine, market)
    assert [r.order_id for r in book.asks] == [good]
    [record] = storage.list_quarantined(engine)
    assert record.row_id == edited and "hash to" in record.reason
    with engine.connect() as connection:
        status = connection.execute(select(_ORDERS.c.status).where(_ORDERS.c.id == edited))
        assert status.scalar_one() == "quarantined"


def test_a_malformed_cache_row_is_quarantined_and_replaced_by_the_next_snapshot(
    engine: Engine,
) -> None:
    """A cached account whose owner is not a key: the next upsert of that account moves
    the row aside with its raw values and writes the fresh snapshot in its place."""
    account, owner, mint = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()
    with engine.begin() as connection:
        connection.execute(
            insert(_CACHE).values(
                token_account=str(account),
                owner="not-a-pubkey",
                mint=str(mint),
                amount=1,
                delegate=None,
                delegated_amount=0,
                slot=10**9,
                fetched_at=storage.read_db_now(connection),
            )
        )
    snapshot = domain.TokenAccount(
        address=account,
        mint=mint,
        owner=owner,
        amount=5,
        delegate=None,
        state=domain.AccountState.INITIALIZED,
        is_native=None,
        delegated_amount=0,
        close_authority=None,
    )
    upsert_account_snapshots(engine, [snapshot], slot=7)
    [record] = storage.list_quarantined(engine)
    assert (record.kind, record.row_id) == ("cache", str(account))
    assert "owner" in record.reason and "not-a-pubkey" in record.raw
    with engine.connect() as connection:
        row = connection.execute(select(_CACHE).where(_CACHE.c.token_account == str(account))).one()
    assert (row.owner, row.amount, row.slot) == (str(owner), 5, 7)


def test_the_second_failure_on_an_input_quarantines_it_and_release_forgets_the_count(
    engine: Engine,
) -> None:
    """record_input_failures counts per (kind, row id) in the database; the first failure
    only counts, the second quarantines the row with the error and its raw values;
    releasing it deletes the count, so a released row gets two chances again."""
    market = _market(engine)
    order_id = _order(engine, market, 1)
    error = RuntimeError("boom")
    inputs = [("order", order_id, "m0")]
    assert storage.record_input_failures(engine, "monitor", inputs, error) == []
    assert storage.count_quarantined(engine) == {}
    assert storage.record_input_failures(engine, "monitor", inputs, error) == [("order", order_id)]
    [record] = storage.list_quarantined(engine)
    assert "monitor failed 2 times" in record.reason and "RuntimeError: boom" in record.reason
    assert order_id in record.raw
    assert storage.get_order(engine, order_id).status == "quarantined"  # type: ignore[union-attr]
    assert storage.release_quarantined(engine, record.id, released_by="test")
    with engine.connect() as connection:
        assert connection.execute(select(_FAILURES)).all() == []
    assert storage.record_input_failures(engine, "monitor", inputs, error) == []


def test_one_account_twice_in_one_snapshot_batch_keeps_the_last_and_refuses_nothing(
    engine: Engine,
) -> None:
    """A batch naming an account twice is written as the last of them (one statement of
    many rows on PostgreSQL may not update one row twice: the batch is made unique)."""
    account, owner, mint = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()

    def snapshot(amount: int) -> domain.TokenAccount:
        return domain.TokenAccount(
            address=account,
            mint=mint,
            owner=owner,
            amount=amount,
            delegate=None,
            state=domain.AccountState.INITIALIZED,
            is_native=None,
            delegated_amount=0,
            close_authority=None,
        )

    upsert_account_snapshots(engine, [snapshot(5), snapshot(6)], slot=7)
    with engine.connect() as connection:
        rows = connection.execute(select(_CACHE).where(_CACHE.c.token_account == str(account)))
        assert [(row.amount, row.slot) for row in rows] == [(6, 7)]
