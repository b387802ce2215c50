"""The cost of market.authorization's check, per settlement (and per order), in microseconds.

    python3 benchmarks/authorization_bench.py [--number 2000] [--batch 64]

* ``settlement_refusal`` with both signatures already verified in this process
  (the usual case: every attempt after an order's first);
* the same with the cache empty: two ed25519 verifications (an order's first);
* ``order_refusal`` (book load, an order from the database), cached and not;
* ``storage.settlement_evidence`` for a batch of fills on an SQLite file: the one
  read SettlementActor makes per batch of attempts, divided by the batch.

Pure timeit on this machine; prints figures only, nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import timeit
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solders.keypair import Keypair
from solders.pubkey import Pubkey

import market as domain
import storage

NOW_S = 1_700_000_000


def _market() -> domain.Market:
    """Signed by its settlement authority, as every market the node settles must be."""
    authority = Keypair()
    market = domain.Market(
        market_id="BENCH",
        base_mint=Pubkey.new_unique(),
        base_decimals=6,
        quote_mint=Pubkey.new_unique(),
        quote_decimals=6,
        lot_size_atoms=1_000,
        tick_size_atoms=10,
        settlement_authority=authority.pubkey(),
        fee_payer=Pubkey.new_unique(),
    )
    return replace(market, definition_signature=domain.sign_market(market, authority))


def _order(
    market: domain.Market, maker: Keypair, side: domain.Side, nonce: int
) -> domain.SignedOrder:
    order = domain.Order(
        market_id=market.market_id,
        side=side,
        price_atoms=1_000,
        size_atoms=10_000,
        maker=maker.pubkey(),
        pay_account=Pubkey.new_unique(),
        receive_account=Pubkey.new_unique(),
        client_order_id=nonce,
        expiry_s=4_000_000_000,
        nonce=nonce,
    )
    return domain.sign_order(order, maker)


def _trade(
    market: domain.Market, nonce: int
) -> tuple[domain.SignedOrder, domain.SignedOrder, domain.Fill]:
    sell = _order(market, Keypair(), domain.Side.SELL, nonce)
    buy = _order(market, Keypair(), domain.Side.BUY, nonce)
    book = domain.match(domain.Book.empty(market), sell.order, now_s=NOW_S).book
    (fill,) = domain.match(book, buy.order, now_s=NOW_S).fills
    return sell, buy, fill


def _evidence(
    sell: domain.SignedOrder, buy: domain.SignedOrder, fill: domain.Fill
) -> domain.SettlementEvidence:
    stored = domain.StoredFill(
        fill.fill_id,
        fill.market_id,
        fill.maker_order_id,
        fill.taker_order_id,
        fill.price_atoms,
        fill.base_atoms,
        fill.quote_atoms,
        NOW_S + 1.0,
    )
    return domain.SettlementEvidence(
        stored,
        {sell.order_id: sell, buy.order_id: buy},
        {},
        {sell.order_id: fill.base_atoms, buy.order_id: fill.base_atoms},
    )


def _us(seconds: float, number: int) -> float:
    return seconds / number * 1e6


def pure(number: int) -> None:
    market = _market()
    sell, buy, fill = _trade(market, 1)
    evidence = _evidence(sell, buy, fill)
    warm = domain.VerifiedSignatures()
    assert domain.settlement_refusal(market, fill, evidence, verified=warm) is None
    cached = timeit.timeit(
        lambda: domain.settlement_refusal(market, fill, evidence, verified=warm), number=number
    )
    cold_cache = domain.VerifiedSignatures()

    def cold() -> None:
        cold_cache.forget()
        domain.settlement_refusal(market, fill, evidence, verified=cold_cache)

    uncached = timeit.timeit(cold, number=number)
    order_cached = timeit.timeit(
        lambda: domain.order_refusal(sell.order_id, sell, market, verified=warm), number=number
    )

    def order_cold() -> None:
        cold_cache.forget()
        domain.order_refusal(sell.order_id, sell, market, verified=cold_cache)

    order_uncached = timeit.timeit(order_cold, number=number)
    print(f"settlement_refusal, signatures cached:   {_us(cached, number):8.1f} us")
    print(f"settlement_refusal, signatures verified: {_us(uncached, number):8.1f} us")
    print(f"order_refusal, signature cached:         {_us(order_cached, number):8.1f} us")
    print(f"order_refusal, signature verified:       {_us(order_uncached, number):8.1f} us")


def evidence_read(batch: int, rounds: int) -> None:
    market = _market()
    with tempfile.TemporaryDirectory() as folder:
        engine = storage.open_engine(storage.sqlite_url(Path(folder) / "bench.db"))
        storage.upgrade(engine)
        storage.insert_market(engine, market)
        lease = storage.LeaseStore(engine, "bench").acquire(
            storage.market_key(market.market_id), 60
        )
        assert lease is not None
        fills = []
        for nonce in range(batch):
            sell, buy, fill = _trade(market, nonce)
            storage.store_order(engine, sell)
            storage.store_order(engine, buy)
            fill = domain.Fill.between(market, nonce, sell.order, buy.order, fill.base_atoms)
            storage.record_match(engine, lease, [fill], {sell.order_id: 0, buy.order_id: 0})
            fills.append(fill.fill_id)
        seconds = timeit.timeit(lambda: storage.settlement_evidence(engine, fills), number=rounds)
        engine.dispose()
    per_batch = seconds / rounds
    print(
        f"settlement_evidence, SQLite, {batch} fills:  {per_batch * 1e3:8.2f} ms a batch, "
        f"{per_batch / batch * 1e6:8.1f} us a settlement"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    pure(args.number)
    evidence_read(args.batch, args.rounds)


if __name__ == "__main__":
    main()
