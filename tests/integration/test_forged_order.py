"""A forged order row through the whole pipeline of one node (issue 14): intake's store
-> OrderMonitor -> MatchActor -> SettlementActor -> a real localnet, on real SQLite and
PostgreSQL.

The attacker can write to the shared database. They rest a real signed sell at 1000
times the market price, and insert an order row for a victim maker (funded and
delegated) buying at that price, with a signature the victim never made. Whether the
row is there before the node loads the book or arrives while it runs, it never rests
and is never matched: it is quarantined with the reason, no fill is written for it,
nothing is signed, and neither maker's balances move. A genuine pair stored after it
settles as usual (the node keeps working).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy import select
from sqlalchemy.engine import Engine

import storage
from actors.settlement import Finished
from crank_node.harness.scenario import Scenario, build_scenario
from crank_node.node.node import Node
from crank_node.node.settings import CrankSettings
from localnet import LocalnetServer
from market import Order, Side, SignedOrder, sign_order
from storage.models import Fill, table_of
from storage.models import Order as OrderRow
from supervision.shutdown import ShutdownCoordinator
from tests.conftest import Recorder

SLOT_MS = 50
LOTS = 10
PRICE_ATOMS = 1_000  # quote atoms per lot: the market's going price
_ORDERS, _FILLS = table_of(OrderRow), table_of(Fill)


pytestmark = [pytest.mark.localnet(slot_ms=SLOT_MS), pytest.mark.timeout(180)]


def _order(scenario: Scenario, maker: Keypair, side: Side, price_atoms: int, lots: int) -> Order:
    market = scenario.markets[0]
    base = scenario.token_account(maker.pubkey(), market.base_mint)
    quote = scenario.token_account(maker.pubkey(), market.quote_mint)
    pay, receive = (quote, base) if side is Side.BUY else (base, quote)
    return Order(
        market_id=market.market_id,
        side=side,
        price_atoms=price_atoms,
        size_atoms=lots * market.lot_size_atoms,
        maker=maker.pubkey(),
        pay_account=pay,
        receive_account=receive,
        client_order_id=1,
        expiry_s=int(time.time()) + 3_600,
        nonce=1,
    )


def _status(engine: Engine, order_id: str) -> str | None:
    with storage.read_transaction(engine, "test.status") as connection:
        found = connection.execute(select(_ORDERS.c.status).where(_ORDERS.c.id == order_id))
        return found.scalar_one_or_none()


def _fills_of(engine: Engine, order_id: str) -> list[Any]:
    columns = _FILLS.c
    with storage.read_transaction(engine, "test.fills") as connection:
        stmt = select(columns.id).where(
            (columns.maker_order_id == order_id) | (columns.taker_order_id == order_id)
        )
        return list(connection.execute(stmt).scalars())


@pytest.mark.parametrize("when", ["before-start", "while-running"])
def test_a_forged_order_row_is_never_matched_nor_signed(
    localnet: LocalnetServer, engine: Engine, database_url: str, recorder: Recorder, when: str
) -> None:
    """The forged buy (victim's accounts, a random signature, 1000x the price) is
    quarantined when the book is loaded or when it arrives; the attacker's sell never
    fills, no settlement of it is signed, the victim's and attacker's balances are
    unchanged; a genuine pair stored after it still settles."""
    wallet = Keypair()
    scenario = build_scenario(
        localnet,
        engine,
        markets=1,
        makers=4,
        settlement_authority=wallet,
        fee_payer=wallet,
        base_atoms_per_maker=10**12,
        quote_atoms_per_maker=10**12,
        seed=14,
    )
    attacker, victim, seller, buyer = scenario.makers
    attack_sell = sign_order(
        _order(scenario, attacker, Side.SELL, 1_000 * PRICE_ATOMS, LOTS), attacker
    )
    forged_terms = _order(scenario, victim, Side.BUY, 1_000 * PRICE_ATOMS, LOTS)
    forged = SignedOrder(forged_terms, Keypair().sign_message(forged_terms.encode()))
    genuine = (
        sign_order(_order(scenario, seller, Side.SELL, PRICE_ATOMS, 1), seller),
        sign_order(_order(scenario, buyer, Side.BUY, PRICE_ATOMS, 1), buyer),
    )
    watched = [
        scenario.token_account(maker.pubkey(), mint)
        for maker in (attacker, victim)
        for mint in (scenario.markets[0].base_mint, scenario.markets[0].quote_mint)
    ]
    before = scenario.snapshot_balances(localnet)
    if when == "before-start":
        storage.store_order(engine, attack_sell)
        storage.store_order(engine, forged)  # what a database writer can do: no check
    node = Node(
        _settings(database_url, localnet),
        signers=(wallet,),
        settlement_listeners=(recorder.record,),
    )
    node.start()
    try:
        if when == "while-running":
            storage.store_order(engine, attack_sell)
            storage.store_order(engine, forged)
        for order in genuine:
            storage.store_order(engine, order)
        recorder.wait_for(
            lambda events: (
                any(isinstance(e, Finished) for e in events)
                and _status(engine, forged.order_id) != "open"
            ),
            timeout_s=120,
        )
    finally:
        reports = ShutdownCoordinator(node.shutdown_phases(), deadline_s=60).run()
    assert all(report.outcome == "done" for report in reports), reports

    after = scenario.snapshot_balances(localnet)
    assert {str(a): after[str(a)] for a in watched} == {str(a): before[str(a)] for a in watched}
    assert _fills_of(engine, forged.order_id) == [], "the forged order was matched"
    assert _status(engine, forged.order_id) == "quarantined"
    assert _status(engine, attack_sell.order_id) == "open"
    (record,) = [r for r in storage.list_quarantined(engine) if r.row_id == forged.order_id]
    assert record.kind == "order" and "signature" in record.reason
    genuine_fills = _fills_of(engine, genuine[0].order_id)
    assert len(genuine_fills) == 1
    settled = storage.get_settlement(engine, genuine_fills[0])
    assert settled is not None and settled.status == "confirmed"


def _settings(database_url: str, localnet: LocalnetServer) -> CrankSettings:
    return CrankSettings(
        instance_id="forged-order-node",
        db_url=database_url,
        rpc_urls=tuple(localnet.urls),
        polling_interval_ms=100,
        lease_ttl_ms=15_000,
        membership_interval_ms=1_000,
    )
