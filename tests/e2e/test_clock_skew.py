"""A node on a host whose clock is an hour off (libfaketime) judges order expiry by the
database's clock, not its own.

A real ``crank-node run`` process under libfaketime (Debian's ``faketime``: ``LD_PRELOAD``
with ``FAKETIME="-1h"`` or ``"+1h"``) on PostgreSQL, with a real localnet. Only the wall
clock is shifted (``FAKETIME_DONT_FAKE_MONOTONIC=1``): a host whose clock is set wrong
still counts seconds right, and its monotonic clock has nothing to do with the epoch.
The test itself, the localnet and PostgreSQL keep the true time.

On SQLite the database's clock *is* each process's clock, so the same skew cannot be
corrected, only caught: a node an hour ahead of its peer takes no lease and says so in
``/health``.

On PostgreSQL the node must refuse, at intake, an order that expired ten minutes ago (the node an hour
behind thinks it has fifty minutes left), accept one with thirty minutes left (the node
an hour ahead thinks it expired half an hour ago), never fill two crossing orders stored
already expired, and fill and settle the live pair.
"""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy import select
from sqlalchemy.engine import Engine

import storage
from crank_node.harness.scenario import Scenario, build_scenario
from localnet import LocalnetServer
from market import Order, Side, SignedOrder, sign_order
from storage import open_engine, read_db_now, sqlite_url, upgrade
from storage.models import Fill as FillRow
from storage.models import Order as OrderRow
from storage.models import table_of
from storage.models.coordination import DistributedLock
from tests.support.node_process import NodeProcess, free_port, make_database, make_wallet

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
SLOT_MS = 50
LEFT_S = 30 * 60  # a live order's time left: less than the skew
EXPIRED_AGO_S = 10 * 60  # an expired order's age: less than the skew
TTL_MS = 2_000
_ORDERS, _FILLS = table_of(OrderRow), table_of(FillRow)


def faketime_env(offset: str) -> dict[str, str]:
    """What runs a process with its wall clock ``offset`` off (``-1h``, ``+1h``), and only
    its wall clock: monotonic time stays true, as on a real host set to the wrong time."""
    if not LIBFAKETIME.exists():
        pytest.skip(f"libfaketime is not installed ({LIBFAKETIME}); apt-get install faketime")
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }


pytestmark = [pytest.mark.localnet(slot_ms=SLOT_MS), pytest.mark.timeout(240)]


@dataclass
class SkewDesk:
    """A PostgreSQL database with one market and four funded makers on a localnet."""

    localnet: LocalnetServer
    db_url: str
    engine: Engine
    scenario: Scenario
    wallet_path: Path
    http_port: int  # the operator listener (health)
    intake_port: int  # the public listener (orders)

    def db_now_s(self) -> int:
        with storage.read_transaction(self.engine, "test.now") as connection:
            return int(read_db_now(connection).timestamp())

    def order(self, maker_index: int, side: Side, expiry_s: int) -> SignedOrder:
        market = self.scenario.markets[0]
        maker = self.scenario.makers[maker_index]
        base, quote = market.base_mint, market.quote_mint
        pay, receive = (base, quote) if side is Side.SELL else (quote, base)
        order = Order(
            market_id=market.market_id,
            side=side,
            price_atoms=100 * market.tick_size_atoms,
            size_atoms=2 * market.lot_size_atoms,
            maker=maker.pubkey(),
            pay_account=self.scenario.token_account(maker.pubkey(), pay),
            receive_account=self.scenario.token_account(maker.pubkey(), receive),
            client_order_id=maker_index + 1,
            expiry_s=expiry_s,
            nonce=maker_index + 1,
        )
        return sign_order(order, maker)

    def submit(self, signed: SignedOrder) -> tuple[int, Any]:
        """(status, body) of POST /orders on the node."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.intake_port}/orders",
            data=json.dumps(signed.to_json()).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def statuses(self, orders: list[SignedOrder]) -> list[str | None]:
        ids = [signed.order_id for signed in orders]
        with storage.read_transaction(self.engine, "test.statuses") as connection:
            rows = dict(connection.execute(select(_ORDERS.c.id, _ORDERS.c.status)).all())
        return [rows.get(order_id) for order_id in ids]

    def fills(self) -> list[tuple[str, str]]:
        with storage.read_transaction(self.engine, "test.fills") as connection:
            stmt = select(_FILLS.c.maker_order_id, _FILLS.c.taker_order_id)
            return [(row[0], row[1]) for row in connection.execute(stmt)]

    def node(self, offset: str) -> NodeProcess:
        return NodeProcess(
            "--instance-id",
            f"skewed{offset}",
            "--rpc-url",
            self.localnet.url,
            "--wallet-path",
            str(self.wallet_path),
            "--http-addr",
            f"127.0.0.1:{self.http_port}",
            "--intake-addr",
            f"127.0.0.1:{self.intake_port}",
            "--polling-interval-ms",
            "100",
            "--lease-ttl-ms",
            str(TTL_MS),
            "--settlement-claim-ttl-ms",
            str(TTL_MS),
            "--membership-interval-ms",
            "500",
            env={"CRANK_DB_URL": self.db_url, **faketime_env(offset)},
        )


@pytest.fixture
def desk(tmp_path: Path, localnet: LocalnetServer, pg_url: str) -> Iterator[SkewDesk]:
    engine = open_engine(pg_url)
    try:
        upgrade(engine)
        wallet_path = make_wallet(tmp_path / "wallet.json")
        wallet = Keypair.from_bytes(bytes(json.loads(wallet_path.read_text())))
        scenario = build_scenario(
            localnet,
            engine,
            markets=1,
            makers=4,
            settlement_authority=wallet,
            fee_payer=wallet,
            base_atoms_per_maker=10**9,
            quote_atoms_per_maker=10**12,
            seed=3,
        )
        yield SkewDesk(localnet, pg_url, engine, scenario, wallet_path, free_port(), free_port())
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("offset", ["-1h", "+1h"])
def test_a_node_an_hour_off_takes_orders_by_the_database_clock(desk: SkewDesk, offset: str) -> None:
    """With the node's wall clock an hour off either way, intake refuses an order that
    expired ten minutes ago (422 OrderExpired on ``expiry_s``, nothing stored) and
    accepts one with thirty minutes left (201)."""
    now_s = desk.db_now_s()
    late = desk.order(1, Side.SELL, now_s - EXPIRED_AGO_S)
    live = desk.order(0, Side.SELL, now_s + LEFT_S)
    node = desk.node(offset)
    try:
        node.wait_for_line("node.ready", timeout_s=90)
        late_status, late_body = desk.submit(late)
        live_status, live_body = desk.submit(live)
    finally:
        code = node.stop(signal.SIGTERM)
    assert code == 0, "".join(node.lines[-30:])
    assert (late_status, late_body.get("error", {}).get("field")) == (422, "expiry_s"), late_body
    assert live_status == 201, live_body
    assert desk.statuses([late, live]) == [None, "open"]


@pytest.mark.postgres
@pytest.mark.parametrize("offset", ["-1h", "+1h"])
def test_a_node_an_hour_off_fills_and_expires_orders_by_the_database_clock(
    desk: SkewDesk, offset: str
) -> None:
    """With the node's wall clock an hour off either way, of two crossing pairs in the
    store, the one that expired ten minutes ago is marked expired and never filled, and
    the one with thirty minutes left fills (it is not expired early) and settles."""
    now_s = desk.db_now_s()
    stale_sell = desk.order(2, Side.SELL, now_s - EXPIRED_AGO_S)
    stale_buy = desk.order(3, Side.BUY, now_s - EXPIRED_AGO_S)
    live_sell = desk.order(0, Side.SELL, now_s + LEFT_S)
    live_buy = desk.order(1, Side.BUY, now_s + LEFT_S)
    for signed in (stale_sell, stale_buy, live_sell, live_buy):  # accepted while live, say
        storage.store_order(desk.engine, signed)

    def settled_or_wrong(_lines: list[str]) -> bool:
        statuses = desk.statuses([stale_sell, stale_buy, live_sell, live_buy])
        return (
            "filled" in statuses[:2]
            or "expired" in statuses[2:]
            or (
                statuses == ["expired", "expired", "filled", "filled"]
                and any("settlement confirmed" in line for line in _lines)
            )
        )

    node = desk.node(offset)
    try:
        node.wait_until(settled_or_wrong, timeout_s=90)
    finally:
        code = node.stop(signal.SIGTERM)
    assert code == 0, "".join(node.lines[-30:])
    statuses = desk.statuses([stale_sell, stale_buy, live_sell, live_buy])
    assert statuses == ["expired", "expired", "filled", "filled"]
    assert desk.fills() == [(live_sell.order_id, live_buy.order_id)]


def _sqlite_node(
    localnet: LocalnetServer,
    database: Path,
    wallet: Path,
    name: str,
    port: int,
    env: dict[str, str],
) -> NodeProcess:
    return NodeProcess(
        "--db-path",
        str(database),
        "--rpc-url",
        localnet.url,
        "--wallet-path",
        str(wallet),
        "--http-addr",
        f"127.0.0.1:{port}",
        "--instance-id",
        name,
        "--membership-interval-ms",
        "500",
        "--lease-ttl-ms",
        "3000",
        env=env,
    )


def _health(port: int) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_on_sqlite_a_node_an_hour_ahead_of_its_peer_takes_no_lease_and_is_unhealthy(
    localnet: LocalnetServer, tmp_path: Path
) -> None:
    """Two nodes on one SQLite file, the second under libfaketime an hour ahead: it logs
    that it takes no work, holds no lease, and its /health is 503 with the clock component
    unhealthy, naming the peer behind it."""
    skewed_env = faketime_env("+1h")
    database = make_database(tmp_path / "crank.db")
    wallet = make_wallet(tmp_path / "wallet.json")
    engine = open_engine(sqlite_url(database))
    good_port, skewed_port = free_port(), free_port()
    good = _sqlite_node(localnet, database, wallet, "good", good_port, {})
    skewed: NodeProcess | None = None
    try:
        good.wait_for_line("node.ready")
        skewed = _sqlite_node(localnet, database, wallet, "skewed", skewed_port, skewed_env)
        skewed.wait_for_line("taking no work")
        skewed.wait_for_line("node.ready")
        status, health = _health(skewed_port)
        with storage.read_transaction(engine, "test.holders") as connection:
            holders = set(connection.execute(select(DistributedLock.holder)).scalars())
    finally:
        codes = [node.stop() for node in (skewed, good) if node is not None]
        engine.dispose()
    assert codes == [0, 0]
    assert (status, health["components"]["clock"]["status"]) == (503, "unhealthy"), health
    assert "good" in health["components"]["clock"]["reason"], health
    assert "behind" in health["components"]["clock"]["reason"], health
    assert "skewed" not in holders
