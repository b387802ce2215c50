"""Stopping a real node process under load: the phased stop, and a second signal.

* SIGTERM while orders are being matched and settled: the node exits 0 within its
  deadline, no lease row names it afterwards, every fill is settled or left
  pending (none failed, none half done), and a restarted node settles the rest,
  each fill exactly once on chain.
* A second SIGTERM during a drain that cannot finish (every send dropped): the
  node exits within a couple of seconds, its attempt and its claim are left for
  recovery, and a restarted node settles the fill once the sends get through.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

import storage
from crank_node.harness.scenario import reconcile
from localnet import LocalnetServer
from localnet.faults import Faults
from tests.support.chain_audit import settled_fill_ids
from tests.support.pipeline_desk import Desk, crossing_pairs_left, unsettled

SLOT_MS = 50
NODE_ID = "crash-node"  # Desk.node's instance id


pytestmark = [pytest.mark.localnet(slot_ms=SLOT_MS), pytest.mark.timeout(240)]


def _all_fills(desk: Desk) -> list[str]:
    return [
        fill.fill_id
        for market in desk.scenario.markets
        for fill in storage.list_fills(desk.engine, market.market_id)
    ]


def _settle_the_rest(desk: Desk) -> None:
    """Restart the node and let it finish: nothing pending, nothing left to match."""
    node = desk.node()
    try:
        node.wait_for_line("node crash-node ready")
        node.wait_until(
            lambda _lines: unsettled(desk.engine) == 0 and not crossing_pairs_left(desk.engine),
            timeout_s=120,
        )
    finally:
        code = node.stop()
    assert code == 0, "".join(node.lines[-30:])


def _check_settled_once(desk: Desk) -> None:
    fills = _all_fills(desk)
    assert desk.settlement_statuses() == {"confirmed": len(fills)}
    on_chain = settled_fill_ids(desk.localnet.url, desk.wallet.pubkey())
    assert on_chain == Counter(dict.fromkeys(fills, 1))
    result = reconcile(desk.before, desk.scenario.snapshot_balances(desk.localnet), desk.engine)
    assert result.ok and result.settled_fill_count == len(fills), result.to_json()


def test_sigterm_under_load_exits_0_releases_leases_and_leaves_the_rest_recoverable(
    tmp_path: Path, localnet: LocalnetServer
) -> None:
    """Orders keep arriving; SIGTERM after the first settlements: exit 0 within the
    deadline, no lease names the node, no settlement failed or is claimed, and the
    restarted node settles what was left, every fill once."""
    desk = Desk(tmp_path, localnet, markets=2, makers=4)
    node = desk.node(None, "--shutdown-timeout-ms", "30000")
    flow = desk.flow()
    try:
        node.wait_for_line("node crash-node ready")
        for order, _ in zip(flow, range(200), strict=False):
            storage.store_order(desk.engine, order)
        node.wait_for_line("settlement confirmed")
        started = time.monotonic()
        code = node.stop(signal.SIGTERM, timeout_s=60)
        stopped_in_s = time.monotonic() - started
        assert code == 0, "".join(node.lines[-30:])
        assert stopped_in_s < 30, f"took {stopped_in_s:.1f}s, past the 30 s deadline"
        assert any("settlements drained:" in line for line in node.lines)
        assert NODE_ID not in desk.lease_holders()
        statuses = desk.settlement_statuses()
        assert set(statuses) <= {"confirmed", "pending", "submitted"}, statuses
        assert sum(statuses.values()) == len(_all_fills(desk)) > 0

        _settle_the_rest(desk)
        _check_settled_once(desk)
    finally:
        desk.engine.dispose()


def test_a_second_sigterm_cuts_a_stuck_drain_short_and_the_state_stays_recoverable(
    tmp_path: Path, localnet: LocalnetServer
) -> None:
    """Every send is dropped, so the drain cannot finish; a second SIGTERM makes the
    node exit within a couple of seconds. The attempt stays recorded and the claim
    released; once sends get through, a restarted node settles the fill once."""
    desk = Desk(tmp_path, localnet)
    localnet.set_faults(0, Faults(drop_sends=True))
    node = desk.node(None, "--shutdown-timeout-ms", "60000")
    try:
        node.wait_for_line("node crash-node ready")
        desk.store_crossing_pair()
        node.wait_for_line("settlement attempt written ahead")
        node.process.send_signal(signal.SIGTERM)
        node.wait_for_line("draining 1 settlements in flight")
        started = time.monotonic()
        code = node.stop(signal.SIGTERM, timeout_s=30)
        stopped_in_s = time.monotonic() - started
        assert code == 0, "".join(node.lines[-30:])
        assert stopped_in_s < 3, f"a hurried stop took {stopped_in_s:.1f}s"
        assert any("cutting the drain short" in line for line in node.lines)
        assert NODE_ID not in desk.lease_holders()
        settlement, attempts = desk.only_settlement()
        assert settlement.status == "submitted" and attempts
        assert storage.settlement_queue(desk.engine, "anyone").claim(1, 1) != [], (
            "the stopped node's claim was not released"
        )

        localnet.clear_faults(0)
        _settle_the_rest(desk)
        _check_settled_once(desk)
    finally:
        desk.engine.dispose()
