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

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from crank_node.harness.scenario import reconcile
from localnet import LocalnetServer
from tests.support.chain_audit import settled_fill_ids, signature_status_exists
from tests.support.pipeline_desk import Desk

SLOT_MS = 50  # a blockhash stays valid ~7.5 s: long enough to resend after a restart


pytestmark = [pytest.mark.localnet(slot_ms=SLOT_MS), pytest.mark.timeout(180)]


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
