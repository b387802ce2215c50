"""A node's surroundings for process tests: an SQLite file with a market and funded
makers on a running localnet, a wallet file, orders, and `crank-node run` processes."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path

from solders.keypair import Keypair
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

import storage
from crank_node.harness.order_flow import OrderFlow
from crank_node.harness.scenario import Scenario, build_scenario
from localnet import LocalnetServer
from market import Order, Side, SignedOrder, sign_order
from storage import open_engine, sqlite_url, upgrade
from storage.models import Order as OrderRow
from storage.models import Settlement, table_of
from storage.models.coordination import DistributedLock
from supervision.tracing import trace
from tests.support.node_process import NodeProcess, free_port

TTL_MS = 2_000  # leases and settlement claims: a restart waits this long to take over
_SETTLEMENTS, _ORDERS = table_of(Settlement), table_of(OrderRow)


def unsettled(engine: Engine) -> int:
    """Settlements not yet confirmed or failed."""
    with storage.read_transaction(engine, "test.unsettled") as connection:
        stmt = select(func.count()).where(_SETTLEMENTS.c.status.in_(("pending", "submitted")))
        return int(connection.execute(stmt).scalar_one())


def crossing_pairs_left(engine: Engine) -> list[tuple[str, str]]:
    """Open orders of different makers on one market that cross: must be none once
    matching is done (the same maker's never fill: no self-trade)."""
    with storage.read_transaction(engine, "test.open_orders") as connection:
        rows = connection.execute(
            select(_ORDERS).where(_ORDERS.c.status == "open", _ORDERS.c.remaining_atoms > 0)
        ).all()
    pairs = []
    for buy in (r for r in rows if r.side == Side.BUY.value):
        for sell in (r for r in rows if r.side == Side.SELL.value):
            same_market = buy.market_id == sell.market_id
            if same_market and buy.maker != sell.maker and buy.price_atoms >= sell.price_atoms:
                pairs.append((buy.id, sell.id))
    return pairs


class Desk:
    """A database (an SQLite file, or ``db_url``) with one market, two funded makers, a
    wallet, and node runs."""

    def __init__(
        self,
        tmp_path: Path,
        localnet: LocalnetServer,
        *,
        markets: int = 1,
        makers: int = 2,
        db_url: str | None = None,
    ) -> None:
        self.localnet = localnet
        self.db_path = tmp_path / "crank.db"
        self.db_url = db_url
        self.engine: Engine = open_engine(db_url or sqlite_url(self.db_path))
        upgrade(self.engine)
        self.wallet = Keypair()
        self.wallet_path = tmp_path / "wallet.json"
        self.wallet_path.write_text(json.dumps(list(bytes(self.wallet))))
        self.wallet_path.chmod(0o600)
        self.scenario: Scenario = build_scenario(
            localnet,
            self.engine,
            markets=markets,
            makers=makers,
            settlement_authority=self.wallet,
            fee_payer=self.wallet,
            base_atoms_per_maker=10**9,
            quote_atoms_per_maker=10**12,
            seed=1,
        )
        self.before = self.scenario.snapshot_balances(localnet)

    def store_crossing_pair(self, *, traced: bool = False) -> list[str]:
        """:meth:`crossing_pair`, stored; their ids, the taker (buy) last. ``traced``:
        each order stored under a trace of its own, as intake stores one (its trace id
        goes on along the fill, settlement, attempts)."""
        ids: list[str] = []
        for signed in self.crossing_pair():
            with trace() if traced else nullcontext():
                storage.store_order(self.engine, signed)
            ids.append(signed.order.order_id)
        return ids

    def crossing_pair(self) -> list[SignedOrder]:
        """A resting sell and a buy that crosses it, signed by the two makers: one fill
        of 3 lots; the taker (buy) last."""
        market = self.scenario.markets[0]
        seller, buyer = self.scenario.makers
        lot = market.lot_size_atoms
        price = 100 * market.tick_size_atoms
        pair: list[SignedOrder] = []
        for maker, side in ((seller, Side.SELL), (buyer, Side.BUY)):
            pay, receive = (
                (market.base_mint, market.quote_mint)
                if side is Side.SELL
                else (market.quote_mint, market.base_mint)
            )
            order = Order(
                market_id=market.market_id,
                side=side,
                price_atoms=price,
                size_atoms=3 * lot,
                maker=maker.pubkey(),
                pay_account=self.scenario.token_account(maker.pubkey(), pay),
                receive_account=self.scenario.token_account(maker.pubkey(), receive),
                client_order_id=1,
                expiry_s=int(time.time()) + 3600,
                nonce=1,
            )
            pair.append(sign_order(order, maker))
        return pair

    def flow(self, seed: int = 7) -> OrderFlow:
        """Random signed orders on the desk's markets (never overdrawing a maker)."""
        return OrderFlow(self.scenario, seed=seed, now_s=time.time, cross_probability=0.6)

    def node(
        self,
        crash_at: str | None = None,
        *extra: str,
        instance_id: str = "crash-node",
        env: dict[str, str] | None = None,
        http_port: int | None = None,
        polling_interval_ms: int = 100,
    ) -> NodeProcess:
        env = {**(env or {}), **({"CRANK_CRASH_AT": crash_at} if crash_at else {})}
        return NodeProcess(
            *extra,
            "--instance-id",
            instance_id,
            *(("--db-url", self.db_url) if self.db_url else ("--db-path", str(self.db_path))),
            "--rpc-url",
            self.localnet.url,
            "--wallet-path",
            str(self.wallet_path),
            "--http-addr",
            f"127.0.0.1:{http_port or free_port()}",
            "--polling-interval-ms",
            str(polling_interval_ms),
            "--lease-ttl-ms",
            str(TTL_MS),
            "--settlement-claim-ttl-ms",
            str(TTL_MS),
            "--membership-interval-ms",
            "500",
            env=env,
        )

    def only_settlement(self) -> tuple[storage.SettlementRecord, list[storage.AttemptRecord]]:
        (fill,) = storage.list_fills(self.engine, self.scenario.markets[0].market_id)
        settlement = storage.get_settlement(self.engine, fill.fill_id)
        assert settlement is not None
        return settlement, storage.list_attempts(self.engine, fill.fill_id)

    def settlement_statuses(self) -> dict[str, int]:
        with storage.read_transaction(self.engine, "test.statuses") as connection:
            rows = connection.execute(select(_SETTLEMENTS.c.status)).scalars().all()
        counts: dict[str, int] = {}
        for status in rows:
            counts[status] = counts.get(status, 0) + 1
        return counts

    def lease_holders(self) -> list[str]:
        with storage.read_transaction(self.engine, "test.leases") as connection:
            return list(connection.execute(select(DistributedLock.holder)).scalars())
