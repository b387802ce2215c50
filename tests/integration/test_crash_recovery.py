"""A real node process killed with SIGKILL between two steps of a settlement, then
restarted: every fill is settled exactly once.

The kill comes from a crash point (supervision/crashpoints.py, ``CRANK_CRASH_AT``)
at each of: fills written but not claimed; an attempt written ahead but not
sent; an attempt landed on chain but not recorded confirmed. The test checks
the state the dead node left (it is the state the crash point names), restarts
the node without the crash point, and then scans the chain's transactions for
the memos: each fill id exactly once, and the balances reconcile.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import storage
from localnet import LocalnetConfig, LocalnetServer
from localnet.scenario import Scenario, build_scenario, reconcile
from market import Order, Side, sign_order
from storage import open_engine, sqlite_url, upgrade
from tests.integration.chain_audit import settled_fill_ids, signature_status_exists
from tests.integration.node_process import NodeProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SLOT_MS = 50  # a blockhash stays valid ~7.5 s: long enough to resend after a restart
TTL_MS = 2_000  # leases and settlement claims: the restart waits this long to take over


@pytest.fixture
def localnet() -> Iterator[LocalnetServer]:
    with LocalnetServer(LocalnetConfig(port=0, endpoints=1, slot_ms=SLOT_MS)) as server:
        yield server


class Desk:
    """A database file with one market, two funded makers, a wallet, and node runs."""

    def __init__(self, tmp_path: Path, localnet: LocalnetServer) -> None:
        self.localnet = localnet
        self.db_path = tmp_path / "crank.db"
        self.engine: Engine = open_engine(sqlite_url(self.db_path))
        upgrade(self.engine)
        self.wallet = Keypair()
        self.wallet_path = tmp_path / "wallet.json"
        self.wallet_path.write_text(json.dumps(list(bytes(self.wallet))))
        self.wallet_path.chmod(0o600)
        self.scenario: Scenario = build_scenario(
            localnet, self.engine, markets=1, makers=2, settlement_authority=self.wallet,
            fee_payer=self.wallet, base_atoms_per_maker=10**9, quote_atoms_per_maker=10**12,
            seed=1,
        )  # fmt: skip
        self.before = self.scenario.snapshot_balances(localnet)

    def store_crossing_pair(self) -> None:
        """A resting sell and a buy that crosses it: one fill of 3 lots."""
        market = self.scenario.markets[0]
        seller, buyer = self.scenario.makers
        lot = market.lot_size_atoms
        price = 100 * market.tick_size_atoms
        for maker, side in ((seller, Side.SELL), (buyer, Side.BUY)):
            pay, receive = (
                (market.base_mint, market.quote_mint)
                if side is Side.SELL
                else (market.quote_mint, market.base_mint)
            )
            order = Order(
                market_id=market.market_id, side=side, price_atoms=price, size_atoms=3 * lot,
                maker=maker.pubkey(), pay_account=self.scenario.token_account(maker.pubkey(), pay),
                receive_account=self.scenario.token_account(maker.pubkey(), receive),
                client_order_id=1, expiry_s=int(time.time()) + 3600, nonce=1,
            )  # fmt: skip
            storage.store_order(self.engine, sign_order(order, maker))

    def node(self, crash_at: str | None = None) -> NodeProcess:
        env = {"CRANK_CRASH_AT": crash_at} if crash_at else {}
        return NodeProcess(
            "--instance-id", "crash-node", "--db-path", str(self.db_path),
            "--rpc-url", self.localnet.url, "--wallet-path", str(self.wallet_path),
            "--http-addr", f"127.0.0.1:{free_port()}", "--polling-interval-ms", "100",
            "--lease-ttl-ms", str(TTL_MS), "--settlement-claim-ttl-ms", str(TTL_MS),
            "--membership-interval-ms", "500",
            env=env,
        )  # fmt: skip

    def only_settlement(self) -> tuple[storage.SettlementRecord, list[storage.AttemptRecord]]:
        (fill,) = storage.list_fills(self.engine, self.scenario.markets[0].market_id)
        settlement = storage.get_settlement(self.engine, fill.fill_id)
        assert settlement is not None
        return settlement, storage.list_attempts(self.engine, fill.fill_id)


@pytest.fixture
def desk(tmp_path: Path, localnet: LocalnetServer) -> Iterator[Desk]:
    desk = Desk(tmp_path, localnet)
    try:
        yield desk
    finally:
        desk.engine.dispose()


def _crash(desk: Desk, point: str) -> None:
    desk.store_crossing_pair()
    node = desk.node(crash_at=point)
    code = node.wait(timeout_s=90)
    assert code == -signal.SIGKILL, "".join(node.lines[-30:])
    assert any(f"crash point {point!r} reached" in line for line in node.lines)


def _restart_and_settle(desk: Desk) -> None:
    node = desk.node()
    try:
        node.wait_for_line("settlement confirmed", timeout_s=90)
    finally:
        code = node.stop()
    assert code == 0, "".join(node.lines[-30:])
    settlement, attempts = desk.only_settlement()
    assert settlement.status == "confirmed"
    assert [a.state for a in attempts].count("confirmed") == 1
    on_chain = settled_fill_ids(desk.localnet.url, desk.wallet.pubkey())
    assert on_chain == Counter({settlement.fill_id: 1})
    result = reconcile(desk.before, desk.scenario.snapshot_balances(desk.localnet), desk.engine)
    assert result.ok and result.settled_fill_count == 1, result.to_json()


def test_killed_after_the_fill_was_written_the_restart_settles_it_once(desk: Desk) -> None:
    """Killed right after the fill and its pending settlement were committed, before
    anyone claimed it: the restarted node claims and settles it, once."""
    _crash(desk, "fill_written")
    settlement, attempts = desk.only_settlement()
    assert (settlement.status, attempts) == ("pending", [])

    _restart_and_settle(desk)


def test_killed_after_the_attempt_was_written_ahead_the_restart_settles_it_once(
    desk: Desk,
) -> None:
    """Killed between writing the attempt and sending it: the chain has never seen it.
    The restarted node asks the chain first, then sends (or, once expired, replaces)
    it; the fill is settled once."""
    _crash(desk, "attempt_written")
    settlement, attempts = desk.only_settlement()
    assert settlement.status == "submitted"
    assert [a.state for a in attempts] == ["signed"]
    assert not signature_status_exists(desk.localnet.url, attempts[0].signature)

    _restart_and_settle(desk)


def test_killed_after_the_attempt_landed_the_restart_records_it_without_resettling(
    desk: Desk,
) -> None:
    """Killed after the chain reported the attempt landed, before it was recorded: the
    restarted node finds the signature on chain and records it; nothing is sent again."""
    _crash(desk, "attempt_landed")
    settlement, attempts = desk.only_settlement()
    assert settlement.status == "submitted"
    assert [a.state for a in attempts] == ["signed"]
    assert signature_status_exists(desk.localnet.url, attempts[0].signature)

    _restart_and_settle(desk)
    _, attempts_after = desk.only_settlement()
    assert [(a.signature, a.state) for a in attempts_after] == [
        (attempts[0].signature, "confirmed")
    ]
