"""A market row edited in the shared database, through the whole pipeline of one node
(issue 14): OrderMonitor -> MatchActor -> SettlementActor -> a real localnet, on real
SQLite and PostgreSQL.

An order's price is quote atoms *per lot*, and the lot size comes from the ``markets``
row, which the makers do not sign. Before market definitions were signed, an attacker
with the database's credentials who set a market's ``lot_size_atoms`` from 1000 to 1
made the buyer of two genuine, signed orders pay 1000 times the price they signed
for. Now the definition is signed by the settlement authority (the node's own key):
an edited row (lot, tick, a mint, decimals, a token program) is never matched and
never settled, nothing is signed, no balance moves, both actors log it at ERROR and
/health is degraded naming it; the node's other market keeps settling.

A market whose authority the attacker swapped to a key of their own, and re-signed
with it, verifies; but the node holds no keypair for that key, so it signs nothing
for it, and keeps running.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from loguru import logger
from solders.keypair import Keypair
from spl.token.constants import TOKEN_2022_PROGRAM_ID
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

import storage
from actors.settlement import Finished
from crank_node.harness.scenario import Scenario, build_scenario
from crank_node.node.node import Node
from crank_node.node.settings import CrankSettings
from localnet import LocalnetServer
from market import Market, Order, Side, sign_order
from storage.models import Fill, Settlement, table_of
from storage.models import Market as MarketRow
from storage.models import Order as OrderRow
from supervision.shutdown import ShutdownCoordinator
from tests.conftest import Recorder

SLOT_MS = 50
LOT_ATOMS = 1_000
LOTS = 10
PRICE_ATOMS = 1_000  # quote atoms per lot
_ORDERS, _FILLS, _MARKETS = table_of(OrderRow), table_of(Fill), table_of(MarketRow)
_SETTLEMENTS = table_of(Settlement)
_REFUSED = ("match.market_unauthorized", "order_monitor.market_unauthorized")

pytestmark = [pytest.mark.localnet(slot_ms=SLOT_MS), pytest.mark.timeout(240)]


class _Seen:
    """A loguru sink: set once every wanted action was logged, keeping those records."""

    def __init__(self, actions: tuple[str, ...]) -> None:
        self.wanted = set(actions)
        self.records: list[dict[str, Any]] = []
        self.done = threading.Event()

    def __call__(self, message: Any) -> None:
        record = message.record
        if record["extra"].get("action") in self.wanted:
            self.records.append(record)
            if {r["extra"]["action"] for r in self.records} >= self.wanted:
                self.done.set()


def _order(scenario: Scenario, market: Market, maker: Keypair, side: Side) -> Order:
    base = scenario.token_account(maker.pubkey(), market.base_mint)
    quote = scenario.token_account(maker.pubkey(), market.quote_mint)
    pay, receive = (quote, base) if side is Side.BUY else (base, quote)
    return Order(
        market_id=market.market_id,
        side=side,
        price_atoms=PRICE_ATOMS,
        size_atoms=LOTS * LOT_ATOMS,
        maker=maker.pubkey(),
        pay_account=pay,
        receive_account=receive,
        client_order_id=1,
        expiry_s=int(time.time()) + 3_600,
        nonce=1,
    )


def _rows(engine: Engine, table: Any, market_id: str) -> list[Any]:
    with storage.read_transaction(engine, "test.rows") as connection:
        return list(connection.execute(select(table).where(table.c.market_id == market_id)))


def _tampering(name: str, localnet: LocalnetServer) -> dict[str, Any]:
    """The ``markets`` row's new values for each attack."""
    if name == "quote_mint":  # a mint of the attacker's
        return {"quote_mint": str(localnet.fixtures.create_mint(6).address)}
    return {
        "lot_size_atoms": {"lot_size_atoms": 1},
        "tick_size_atoms": {"tick_size_atoms": 1},
        "base_decimals": {"base_decimals": 9},
        "base_token_program": {"base_token_program": str(TOKEN_2022_PROGRAM_ID)},
    }[name]


@pytest.mark.parametrize(
    "field",
    ["lot_size_atoms", "tick_size_atoms", "quote_mint", "base_decimals", "base_token_program"],
)
def test_a_market_row_edited_in_the_database_is_never_matched_nor_settled(
    localnet: LocalnetServer, engine: Engine, database_url: str, recorder: Recorder, field: str
) -> None:
    """Two genuine crossing orders on a market whose row was edited after it was
    signed: no fill, no settlement, no balance moves, ERROR logs from OrderMonitor and
    MatchActor, /health degraded naming the market; the same pair on the node's other
    (untouched) market settles. Before the fix, the lot edit made the buyer pay 1000x."""
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
        seed=41,
        lot_size_atoms=LOT_ATOMS,
    )
    tampered, untouched = scenario.markets
    seller, buyer, other_seller, other_buyer = scenario.makers
    with storage.write_transaction(engine, "test.tamper_market") as connection:
        connection.execute(
            update(_MARKETS)
            .where(_MARKETS.c.id == tampered.market_id)
            .values(**_tampering(field, localnet))
        )
    watched = [
        scenario.token_account(maker.pubkey(), mint)
        for maker in (seller, buyer)
        for mint in (tampered.base_mint, tampered.quote_mint)
    ]
    before = scenario.snapshot_balances(localnet)
    for market, sell_maker, buy_maker in (
        (tampered, seller, buyer),
        (untouched, other_seller, other_buyer),
    ):
        storage.store_order(
            engine, sign_order(_order(scenario, market, sell_maker, Side.SELL), sell_maker)
        )
        storage.store_order(
            engine, sign_order(_order(scenario, market, buy_maker, Side.BUY), buy_maker)
        )

    def finished(events: list[Any], market_id: str) -> bool:
        return any(isinstance(e, Finished) and e.fill.market_id == market_id for e in events)

    seen = _Seen(_REFUSED)
    handler = logger.add(seen, level="DEBUG")
    node = Node(
        _settings(database_url, localnet),
        signers=(wallet,),
        settlement_listeners=(recorder.record,),
    )
    node.start()
    try:
        # The refusals happen when the node gains the markets, before any order is
        # polled; before the fix the tampered market's settlement finishes instead.
        recorder.wait_for(
            lambda events: (
                finished(events, untouched.market_id)
                and (seen.done.is_set() or finished(events, tampered.market_id))
            ),
            timeout_s=150,
        )
        health, components = node.health()
    finally:
        reports = ShutdownCoordinator(node.shutdown_phases(), deadline_s=60).run()
        logger.remove(handler)
    assert all(report.outcome == "done" for report in reports), reports

    after = scenario.snapshot_balances(localnet)
    moved = {
        str(a): after[str(a)] - before[str(a)] for a in watched if after[str(a)] != before[str(a)]
    }
    assert moved == {}, f"tokens moved on the tampered market: {moved}"
    assert _rows(engine, _FILLS, tampered.market_id) == [], "the tampered market was matched"
    assert _rows(engine, _SETTLEMENTS, tampered.market_id) == []
    assert {r.status for r in _rows(engine, _ORDERS, tampered.market_id)} == {"open"}
    assert {r["extra"]["action"] for r in seen.records} == set(_REFUSED)
    assert all(r["level"].name == "ERROR" for r in seen.records)
    assert all("definition" in r["message"] for r in seen.records)
    assert health == "degraded"
    authorization = components["authorization"]
    assert authorization["status"] == "degraded"
    assert authorization["refused_markets"] == [tampered.market_id]
    assert tampered.market_id in authorization["reason"]
    (settled,) = _rows(engine, _SETTLEMENTS, untouched.market_id)
    assert settled.status == "confirmed"


def test_a_market_whose_authority_the_attacker_swapped_and_re_signed_signs_nothing(
    localnet: LocalnetServer, engine: Engine, database_url: str, recorder: Recorder
) -> None:
    """The markets row's settlement authority set to the attacker's key, re-signed by
    the attacker: the definition verifies, but the node holds no keypair for that key,
    so no settlement of the market is ever signed, no balance moves, the node keeps
    running (no actor restart) and its other market settles."""
    wallet, attacker = Keypair(), Keypair()
    scenario = build_scenario(
        localnet,
        engine,
        markets=2,
        makers=4,
        settlement_authority=wallet,
        fee_payer=wallet,
        base_atoms_per_maker=10**12,
        quote_atoms_per_maker=10**12,
        seed=42,
        lot_size_atoms=LOT_ATOMS,
    )
    swapped_market, untouched = scenario.markets
    with storage.write_transaction(engine, "test.swap_authority") as connection:
        connection.execute(
            update(_MARKETS)
            .where(_MARKETS.c.id == swapped_market.market_id)
            .values(settlement_authority=str(attacker.pubkey()), definition_signature=None)
        )
    storage.sign_stored_market(engine, swapped_market.market_id, attacker)
    seller, buyer, other_seller, other_buyer = scenario.makers
    watched = [
        scenario.token_account(maker.pubkey(), mint)
        for maker in (seller, buyer)
        for mint in (swapped_market.base_mint, swapped_market.quote_mint)
    ]
    before = scenario.snapshot_balances(localnet)
    for market, sell_maker, buy_maker in (
        (swapped_market, seller, buyer),
        (untouched, other_seller, other_buyer),
    ):
        storage.store_order(
            engine, sign_order(_order(scenario, market, sell_maker, Side.SELL), sell_maker)
        )
        storage.store_order(
            engine, sign_order(_order(scenario, market, buy_maker, Side.BUY), buy_maker)
        )

    seen = _Seen(("settlement.no_signer",))
    handler = logger.add(seen, level="DEBUG")
    node = Node(
        _settings(database_url, localnet),
        signers=(wallet,),
        settlement_listeners=(recorder.record,),
    )
    node.start()
    try:
        recorder.wait_for(
            lambda events: (
                any(
                    isinstance(e, Finished) and e.fill.market_id == untouched.market_id
                    for e in events
                )
                and seen.done.is_set()
            ),
            timeout_s=150,
        )
        _, components = node.health()
    finally:
        reports = ShutdownCoordinator(node.shutdown_phases(), deadline_s=60).run()
        logger.remove(handler)
    assert all(report.outcome == "done" for report in reports), reports

    after = scenario.snapshot_balances(localnet)
    assert {str(a): after[str(a)] for a in watched} == {str(a): before[str(a)] for a in watched}
    unsignable = _rows(engine, _SETTLEMENTS, swapped_market.market_id)
    assert unsignable, "the swapped market was not matched: nothing to refuse"
    for settlement in unsignable:
        assert settlement.status != "confirmed"
        assert storage.list_attempts(engine, settlement.id) == [], "a transaction was signed"
    assert components["actors"]["restarts"] == 0, components["actors"]
    assert [r["level"].name for r in seen.records][:1] == ["ERROR"]
    (settled,) = _rows(engine, _SETTLEMENTS, untouched.market_id)
    assert settled.status == "confirmed"


def _settings(database_url: str, localnet: LocalnetServer) -> CrankSettings:
    return CrankSettings(
        instance_id="tampered-market-node",
        db_url=database_url,
        rpc_urls=tuple(localnet.urls),
        polling_interval_ms=100,
        lease_ttl_ms=15_000,
        membership_interval_ms=1_000,
    )
