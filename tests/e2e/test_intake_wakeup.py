"""An order a node's own intake takes is matched without waiting for the order poll.

A real ``crank-node run`` process on an SQLite file and a localnet, polling the order
store once a minute (``--polling-interval-ms 60000``): the two orders of a crossing
pair are POSTed to its intake listener after its one poll on taking the market, and
their fill must be settled on chain well before the next poll would come. With
``--intake-wakeup-ms 0`` the same pair waits for that poll: nothing is matched.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import storage
from localnet import LocalnetServer
from market import CancelRequest, SignedOrder, sign_cancel
from storage.models import Fill as FillRow
from storage.models import Settlement, table_of
from tests.support.node_process import NodeProcess, free_port
from tests.support.pipeline_desk import Desk
from tests.support.waiting import wait_until

POLL_MS = 60_000  # the order poll: far longer than any wait below
SETTLED_WITHIN_S = 30.0
UNMATCHED_FOR_S = 5.0  # wake-ups off: how long the pair is watched staying unmatched
_FILLS, _SETTLEMENTS = table_of(FillRow), table_of(Settlement)

pytestmark = [pytest.mark.localnet(slot_ms=50), pytest.mark.timeout(180)]


def start(desk: Desk, *extra: str) -> tuple[NodeProcess, str, str]:
    """A node on the desk polling once a minute; (it, its operator URL, its intake URL)."""
    http_port, intake_port = free_port(), free_port()
    process = desk.node(
        None,
        "--intake-addr",
        f"127.0.0.1:{intake_port}",
        *extra,
        instance_id="wakeup-node",
        http_port=http_port,
        polling_interval_ms=POLL_MS,
    )
    return process, f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{intake_port}"


def count(desk: Desk, stmt: Any) -> int:
    with storage.read_transaction(desk.engine, "test.count") as connection:
        return len(connection.execute(stmt).all())


def confirmed_fills(desk: Desk) -> int:
    return count(desk, select(_SETTLEMENTS.c.fill_id).where(_SETTLEMENTS.c.status == "confirmed"))


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        document: dict[str, Any] = json.loads(response.read())
        return document


def post_order(intake_url: str, signed: SignedOrder) -> int:
    return post_json(f"{intake_url}/orders", signed.to_json())


def post_json(url: str, document: Any) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(document).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            raise AssertionError(f"{error.code}: {error.read()!r}") from error


def monitor(operator_url: str) -> dict[str, Any]:
    state: dict[str, Any] = get_json(f"{operator_url}/status")["pipeline"]["monitor"]
    return state


def wait_taken(process: NodeProcess, operator_url: str, desk: Desk, *, feed: bool = False) -> None:
    """Wait for the node to be ready, hold the desk's market and have read it once
    (and, with ``feed``, to listen for the server's notices)."""
    process.wait_for_line("node.ready")
    market_id = desk.scenario.markets[0].market_id

    def taken() -> bool:
        state = monitor(operator_url)
        listening = state.get("order_feed") is not None and state["order_feed"]["connected"]
        return market_id in state["markets"] and state["polls"] >= 1 and (listening or not feed)

    assert wait_until(taken, 30), f"the node never took the market: {monitor(operator_url)}"


@pytest.fixture
def desk(tmp_path: Path, localnet: LocalnetServer) -> Iterator[Desk]:
    desk = Desk(tmp_path, localnet)
    try:
        yield desk
    finally:
        desk.engine.dispose()


def run_pair(
    desk: Desk, *extra: str, within_s: float
) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """Start the node, wait for its poll on taking the market, POST a crossing pair;
    (whether its fill settled within ``within_s``, the monitor's state before the POSTs
    and after)."""
    process, operator_url, intake_url = start(desk, *extra)
    try:
        wait_taken(process, operator_url, desk)
        before = monitor(operator_url)
        for signed in desk.crossing_pair():
            assert post_order(intake_url, signed) == 201
        settled = wait_until(lambda: confirmed_fills(desk) == 1, within_s)
        return settled, before, monitor(operator_url)
    finally:
        code = process.stop()
        assert code == 0, "".join(process.lines[-30:])


def test_orders_taken_by_the_node_are_matched_and_settled_without_waiting_for_the_poll(
    desk: Desk,
) -> None:
    """Polling once a minute, the pair POSTed after the node's first poll is read on
    the intake's wake-up (the default intake_wakeup_ms), matched and settled within
    seconds; the monitor counts the reads asked for by the intake apart."""
    settled, before, after = run_pair(desk, within_s=SETTLED_WITHIN_S)

    assert settled, f"not settled within {SETTLED_WITHIN_S} s: {after}"
    assert before["polls_on_wakeup"] == 0
    assert after["polls_on_wakeup"] >= 1
    assert after["polls"] - before["polls"] == after["polls_on_wakeup"]  # no periodic poll


def test_with_wakeups_off_the_orders_wait_for_the_poll(desk: Desk) -> None:
    """``--intake-wakeup-ms 0``: the same pair is stored but not even matched before
    the next poll, a minute away (what every node did before wake-ups)."""
    settled, before, after = run_pair(desk, "--intake-wakeup-ms", "0", within_s=UNMATCHED_FOR_S)

    assert not settled
    assert count(desk, select(_FILLS.c.id)) == 0
    assert (after["polls"], after["polls_on_wakeup"]) == (before["polls"], 0)


@pytest.fixture
def pg_desk(tmp_path: Path, localnet: LocalnetServer, pg_url: str) -> Iterator[Desk]:
    """The desk on PostgreSQL (a schema of its own)."""
    desk = Desk(tmp_path, localnet, db_url=pg_url)
    try:
        yield desk
    finally:
        desk.engine.dispose()


def test_on_postgresql_orders_another_node_stores_are_matched_without_waiting_for_the_poll(
    pg_desk: Desk,
) -> None:
    """On PostgreSQL the node polling once a minute also hears of the orders it did not
    take (stored here, as another node's intake stores them: storage.store_order) from
    the server's notices, and settles their fill within seconds; every read after the
    stores is a wake-up, and its order feed counts the two notices."""
    desk = pg_desk
    process, operator_url, _ = start(desk)
    try:
        wait_taken(process, operator_url, desk, feed=True)
        before = monitor(operator_url)

        desk.store_crossing_pair()

        settled = wait_until(lambda: confirmed_fills(desk) == 1, SETTLED_WITHIN_S)
        after = monitor(operator_url)
    finally:
        code = process.stop()
        assert code == 0, "".join(process.lines[-30:])
    assert settled, f"not settled within {SETTLED_WITHIN_S} s: {after}"
    assert after["polls_on_wakeup"] >= 1
    assert after["polls"] - before["polls"] == after["polls_on_wakeup"]  # no periodic poll
    assert after["order_feed"]["notices"] - before["order_feed"]["notices"] == 2


def test_an_order_cancelled_through_the_node_leaves_the_book_without_waiting_for_the_poll(
    desk: Desk,
) -> None:
    """Polling once a minute: a sell POSTed is told to the book on the intake's wake-up;
    its maker's signed cancel, POSTed next, wakes the monitor again, which tells the
    book the order is gone within seconds (before, it stayed there until the poll, and
    the next crossing order's match write met it cancelled: a conflict and a reload)."""
    process, operator_url, intake_url = start(desk)
    try:
        wait_taken(process, operator_url, desk)
        sell, _ = desk.crossing_pair()
        assert post_order(intake_url, sell) == 201
        assert wait_until(lambda: monitor(operator_url)["told"] == 1, 30), monitor(operator_url)
        before = monitor(operator_url)
        seller = desk.scenario.makers[0]
        request = CancelRequest(sell.order_id, seller.pubkey(), int(time.time()))
        cancel = sign_cancel(request, seller).to_json()

        assert post_json(f"{intake_url}/orders/{sell.order_id}/cancel", cancel) == 200
        gone = wait_until(lambda: monitor(operator_url)["told"] == 0, UNMATCHED_FOR_S * 2)
        after = monitor(operator_url)
    finally:
        code = process.stop()
        assert code == 0, "".join(process.lines[-30:])
    assert gone, f"the cancelled order was still in the book: {after}"
    assert after["polls_on_wakeup"] == before["polls_on_wakeup"] + 1
    assert after["polls"] == before["polls"] + 1  # that read, not the poll
