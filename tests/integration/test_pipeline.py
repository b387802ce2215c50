"""The whole pipeline in one node: intake's store -> OrderMonitor -> MatchActor ->
SettlementActor -> chain, on a real localnet (ticking slots), real SQLite and
real PostgreSQL.

Four makers trade on two markets with a few hundred random signed orders (the
seeded :class:`~crank_node.harness.order_flow.OrderFlow`). Afterwards: no two orders of
different makers that cross are left open (every crossing pair filled), no
order is filled beyond its size, every fill is settled on chain exactly once
(its memo, found by scanning the chain), and every token account's balance is
its starting balance plus what the database's fills say, exactly.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy import select
from sqlalchemy.engine import Engine

import storage
from actors.settlement import Finished
from crank_node.harness.order_flow import OrderFlow
from crank_node.harness.scenario import Scenario, build_scenario, reconcile
from crank_node.node.node import Node
from crank_node.node.settings import CrankSettings
from localnet import LocalnetServer
from storage.models import Fill, Order, Settlement, table_of
from supervision.shutdown import ShutdownCoordinator
from tests.conftest import Recorder
from tests.support.chain_audit import settled_fill_ids
from tests.support.pipeline_desk import crossing_pairs_left, unsettled

ORDERS = 300
SLOT_MS = 50
_ORDERS, _FILLS, _SETTLEMENTS = table_of(Order), table_of(Fill), table_of(Settlement)


pytestmark = [pytest.mark.localnet(slot_ms=SLOT_MS), pytest.mark.timeout(180)]


def _settings(database_url: str, localnet: LocalnetServer) -> CrankSettings:
    return CrankSettings(
        instance_id="pipeline-node",
        db_url=database_url,
        rpc_urls=tuple(localnet.urls),
        polling_interval_ms=100,
        lease_ttl_ms=15_000,
        membership_interval_ms=1_000,
    )


def _quiet(engine: Engine, events: list[Any], orders_stored: int) -> bool:
    """Nothing is left to match or settle (checked at each finished settlement)."""
    finished = sum(isinstance(event, Finished) for event in events)
    return (
        finished > 0
        and orders_stored == ORDERS
        and unsettled(engine) == 0
        and not crossing_pairs_left(engine)
    )


def test_random_orders_on_two_markets_all_fill_and_settle_exactly_once(
    localnet: LocalnetServer, engine: Engine, database_url: str, recorder: Recorder
) -> None:
    """Four makers, two markets, 300 random orders (half stored before the node starts,
    half while it runs): every crossing pair fills, nothing overfills, every fill
    settles on chain exactly once, and the balances reconcile with the fills."""
    wallet = Keypair()
    scenario = build_scenario(
        localnet,
        engine,
        markets=2,
        makers=4,
        settlement_authority=wallet,
        fee_payer=wallet,
        base_atoms_per_maker=10**12,
        quote_atoms_per_maker=10**12,
        seed=6,
    )
    before = scenario.snapshot_balances(localnet)
    flow = OrderFlow(scenario, seed=6, now_s=time.time, cross_probability=0.5)
    orders = [order for order, _ in zip(flow, range(ORDERS), strict=False)]
    assert len(orders) == ORDERS
    stored = 0
    for order in orders[: ORDERS // 2]:
        storage.store_order(engine, order)
        stored += 1
    node = Node(
        _settings(database_url, localnet),
        signers=(wallet,),
        settlement_listeners=(recorder.record,),
    )
    node.start()
    try:
        recorder.wait_for(lambda events: len(events) > 0, timeout_s=60)  # markets are held
        for order in orders[ORDERS // 2 :]:
            storage.store_order(engine, order)
            stored += 1
        recorder.wait_for(lambda events: _quiet(engine, events, stored), timeout_s=120)
    finally:
        reports = ShutdownCoordinator(node.shutdown_phases(), deadline_s=60).run()
    assert all(report.outcome == "done" for report in reports), reports

    _check_outcome(engine, localnet, scenario, before, recorder.snapshot())


def _check_outcome(
    engine: Engine,
    localnet: LocalnetServer,
    scenario: Scenario,
    before: dict[str, int],
    events: list[Any],
) -> None:
    fills = [
        fill for market in scenario.markets for fill in storage.list_fills(engine, market.market_id)
    ]
    assert len(fills) >= 50, f"too few fills to mean anything: {len(fills)}"
    confirmed = [e for e in events if isinstance(e, Finished) and e.outcome == "confirmed"]
    assert len(confirmed) == len(fills) == len({e.settlement_id for e in confirmed})
    on_chain = settled_fill_ids(localnet.url, scenario.settlement_authority.pubkey())
    assert on_chain == Counter({fill.fill_id: 1 for fill in fills})
    filled: Counter[str] = Counter()
    for fill in fills:
        filled[fill.maker_order_id] += fill.base_atoms
        filled[fill.taker_order_id] += fill.base_atoms
    with storage.read_transaction(engine, "test.orders") as connection:
        rows = {r.id: r for r in connection.execute(select(_ORDERS)).all()}
    for order_id, atoms in filled.items():
        row = rows[order_id]
        assert atoms + row.remaining_atoms == row.size_atoms, f"order {order_id} overfilled"
    assert all(fill.buyer != fill.seller for fill in fills), "a maker traded with itself"
    result = reconcile(before, scenario.snapshot_balances(localnet), engine)
    assert result.ok, result.to_json()
    assert result.settled_fill_count == len(fills)
