"""Exactly once when the chain is seen through views that disagree (issue 13).

A real localnet in manual-slot mode over HTTP, a real RpcRouter, BlockhashActor
and SettlementActor, and a real SQLite database. The test moves the slots, so
nothing here depends on timing: the actors act on what the endpoints show.

The double settlement these reproduce: attempt 1's sends are dropped, then its
very bytes land in one of the last blocks before its ``lastValidBlockHeight``
(a late landing); the block height is read from an up-to-date endpoint and the
statuses from one that lags ``LAG_SLOTS`` and has not seen the landing. "No
status" + "height past" looked like death, attempt 2 was signed, and it landed
too: the seller paid twice.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.models import TxOpts
from solders.signature import Signature
from sqlalchemy.engine import Engine

import storage
from actors.blockhash import BlockhashActor, BlockhashSettings, FreshBlockhash
from actors.rpc import RpcRouter, RpcRouterConfig
from actors.settlement import (
    AttemptsExpired,
    Finished,
    GetSettlementState,
    SettlementActor,
    SettlementSettings,
    signer_map,
)
from actors.settlement.work import SettlementWork, draft_attempt
from localnet import LocalnetServer
from localnet.faults import Faults
from market import sign_order
from supervision import ActorHandle, launch
from tests.conftest import Recorder
from tests.integration.market.conftest import Rpc, Trade, make_trade
from tests.support.chain_audit import settled_fill_ids

LAG_SLOTS = 10
UP_TO_DATE, LAGGING = 0, 1
FAST = SettlementSettings(
    claim_ttl_s=60.0, poll_interval_s=0.2, status_interval_s=0.05, resend_interval_s=0.2
)


pytestmark = [
    pytest.mark.localnet(endpoints=2, status_cache_slots=150, transaction_history_slots=150),
    pytest.mark.timeout(180),
]


@dataclass
class Desk:
    trade: Trade
    engine: Engine
    recorder: Recorder
    actors: list[Any] = field(default_factory=list)

    def start(
        self,
        *,
        height_url: str,
        status_url: str,
        offset_s: float = 0.0,
        slot_feed_url: str | None = None,
    ) -> None:
        """BlockhashActor reads heights through ``height_url``; SettlementActor sends
        and asks statuses through ``status_url`` (two routers: steering, not luck), and
        starts a round as each slot arrives from ``slot_feed_url`` if given."""
        height_router = RpcRouter(RpcRouterConfig.from_urls([height_url]), name="rpc-height")
        status_router = RpcRouter(RpcRouterConfig.from_urls([status_url]), name="rpc-status")
        blockhash = BlockhashActor(
            _handle_of(height_router), BlockhashSettings(refresh_interval_s=0.05, max_age_s=1.0)
        )
        for actor in (height_router, status_router, blockhash):
            launch(actor)
        settler = SettlementActor(
            self.engine,
            _handle_of(status_router),
            _handle_of(blockhash),
            signer_map(self.trade.fee_payer, self.trade.authority),
            node_id="node-a",
            settings=dataclasses.replace(
                FAST, slot_feed_urls=() if slot_feed_url is None else (slot_feed_url,)
            ),
            listeners=(self.recorder.record,),
            db_time_offset_s=lambda: offset_s,
        )
        launch(settler)
        self.actors += [settler, blockhash, status_router, height_router]

    def stop(self) -> None:
        for actor in self.actors:
            actor.actor_ref.stop(timeout=10)
        self.actors.clear()

    def attempts(self) -> list[storage.AttemptRecord]:
        return storage.list_attempts(self.engine, self.trade.fill.fill_id)

    def settlement(self) -> storage.SettlementRecord:
        found = storage.get_settlement(self.engine, self.trade.fill.fill_id)
        assert found is not None
        return found


def _handle_of(actor: Any) -> ActorHandle:
    handle = ActorHandle(actor.name)
    handle.attach(actor.actor_inbox)
    return handle


@pytest.fixture
def desk(localnet: LocalnetServer, engine: Engine, recorder: Recorder) -> Iterator[Desk]:
    trade = make_trade(localnet)
    storage.insert_market(engine, trade.market)
    storage.store_order(engine, sign_order(trade.sell, trade.seller))
    storage.store_order(engine, sign_order(trade.buy, trade.buyer))
    lease = storage.LeaseStore(engine, "matcher").acquire(
        storage.market_key(trade.market.market_id), 60
    )
    assert lease is not None
    remaining = {trade.sell.order_id: 5 * 10**8, trade.buy.order_id: 0}
    storage.record_match(engine, lease, [trade.fill], remaining)
    found = Desk(trade, engine, recorder)
    try:
        yield found
    finally:
        found.stop()


def _expected_after(trade: Trade, before: dict[str, int]) -> dict[str, int]:
    fill = trade.fill
    return {
        "seller_base": before["seller_base"] - fill.base_atoms,
        "buyer_base": before["buyer_base"] + fill.base_atoms,
        "buyer_quote": before["buyer_quote"] - fill.quote_atoms,
        "seller_quote": before["seller_quote"] + fill.quote_atoms,
    }


def _poll(predicate: Callable[[], bool], failure: str, timeout_s: float = 60.0) -> None:
    """Wait until ``predicate()`` holds, asking every 50 ms (bounded): nothing signals
    these database and log states."""
    pause = threading.Event()  # never set
    gives_up_at = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < gives_up_at, failure
        pause.wait(0.05)


def _deliver(url: str, raw: bytes) -> None:
    """Hand ``raw`` to the ledger through ``url`` (it lands in the next slot)."""

    async def send(client: AsyncClient) -> None:
        await client.send_raw_transaction(raw, TxOpts(skip_preflight=True))

    Rpc(url)(send)


def _advance_to_height(localnet: LocalnetServer, height: int) -> None:
    """Produce slots until the processed block height is ``height`` (one slot at a time
    is not needed: the actors act only on what they read afterwards)."""
    missing = height - localnet.ledger.block_height
    if missing > 0:
        localnet.advance_slots(missing)


def _deferred(logs: list[dict[str, Any]]) -> bool:
    return any(r["extra"].get("action") == "settlement.status_from_behind" for r in logs)


def _expired(recorder: Recorder) -> bool:
    return any(isinstance(e, AttemptsExpired) for e in recorder.snapshot())


@pytest.mark.parametrize("paced_by", ["timer", "up-to-date slot feed"])
def test_a_late_landing_hidden_by_a_lagging_status_reader_is_never_settled_twice(
    desk: Desk, captured_logs: list[dict[str, Any]], paced_by: str
) -> None:
    """Attempt 1's sends are dropped; its bytes land two blocks before its
    lastValidBlockHeight. The height past it is read from the up-to-date endpoint, the
    statuses from one LAG_SLOTS behind that has not seen the landing. That "no status"
    comes from a view older than the slot of the height, so it decides nothing: no
    attempt 2 is signed, and once the lagging endpoint sees the landing the settlement
    is confirmed with attempt 1. The seller pays once. With the slot feed of the
    up-to-date endpoint, a round starts the moment each slot past the height is made:
    the worst moment, while the status reader is furthest behind."""
    trade, localnet = desk.trade, desk.trade.localnet
    urls = localnet.urls
    localnet.set_faults(LAGGING, Faults(lag_slots=LAG_SLOTS, drop_sends=True))
    before = trade.balances()
    feed = localnet.pubsub_urls[UP_TO_DATE] if paced_by != "timer" else None
    desk.start(height_url=urls[UP_TO_DATE], status_url=urls[LAGGING], slot_feed_url=feed)
    _poll(lambda: bool(desk.attempts()), "attempt 1 was never written")
    (first,) = desk.attempts()
    lvbh = first.last_valid_block_height

    # The late landing: attempt 1's bytes land at height lvbh - 2.
    _advance_to_height(localnet, lvbh - 3)
    _deliver(urls[UP_TO_DATE], first.raw_transaction)
    localnet.advance_slots(1)
    landed = localnet.ledger.landed(_signature(first.signature))
    assert landed is not None and landed.err is None, "attempt 1 did not land late"
    # The up-to-date endpoint's confirmed height passes lvbh; the lagging one's tip is
    # still before the landing slot.
    _advance_to_height(localnet, lvbh + 2)
    assert localnet.ledger.slot - LAG_SLOTS < landed.slot
    _poll(
        lambda: _expired(desk.recorder) or _deferred(captured_logs),
        "the actor neither expired attempt 1 nor deferred on a view from behind",
    )
    if _expired(desk.recorder):
        # The bug: attempt 2 was signed; its sends are dropped too, so deliver it.
        _poll(lambda: len(desk.attempts()) == 2, "attempt 2 was never written")
        _deliver(urls[UP_TO_DATE], desk.attempts()[1].raw_transaction)
        localnet.advance_slots(2)

    localnet.advance_slots(LAG_SLOTS + 3)  # the lagging endpoint now sees every landing
    finished = desk.recorder.wait_for(
        lambda events: any(isinstance(e, Finished) for e in events), timeout_s=60
    )
    assert settled_fill_ids(urls[UP_TO_DATE], trade.authority.pubkey()) == {
        trade.fill.fill_id: 1
    }, "the fill was settled more than once on chain"
    assert trade.balances() == _expected_after(trade, before)
    (event,) = [e for e in finished if isinstance(e, Finished)]
    assert (event.outcome, event.signature) == ("confirmed", first.signature)
    assert [a.signature for a in desk.attempts()] == [first.signature]
    if feed is not None:  # the feed did pace rounds here, not only the timer
        state = _handle_of(desk.actors[0]).ask(GetSettlementState()).get(timeout=5)
        assert state.slot_feed["connects"] == 1 and state.rounds_on_slots > 0


def test_recovery_after_history_was_pruned_never_settles_a_landed_fill_again(
    desk: Desk,
) -> None:
    """A node wrote attempt 1, sent it, it landed, and the node died before recording
    it. When recovery comes, the chain has pruned that transaction from its history
    (statuses, getTransaction, getSignaturesForAddress all forget it) and the block
    height is past its lastValidBlockHeight. "No status" proves nothing here: the
    marker it created says the fill settled, so recovery records it confirmed (signature
    unknown) and signs nothing."""
    trade, localnet = desk.trade, desk.trade.localnet
    urls = localnet.urls
    before = trade.balances()
    first = _attempt_landed_by_dead_node(desk)
    assert trade.balances() == _expected_after(trade, before)
    # Past lvbh and past the 150-slot history: the landing is forgotten.
    localnet.advance_slots(localnet.config.transaction_history_slots + 10)
    assert localnet.ledger.landed(_signature(first.signature)) is None
    assert localnet.ledger.block_height > first.last_valid_block_height

    desk.start(height_url=urls[UP_TO_DATE], status_url=urls[UP_TO_DATE], offset_s=120.0)
    pause = threading.Event()
    gives_up_at = time.monotonic() + 60
    while not any(isinstance(e, Finished) for e in desk.recorder.snapshot()):
        assert time.monotonic() < gives_up_at, "recovery never finished the settlement"
        attempts = desk.attempts()
        for attempt in attempts[1:]:  # the bug: a new attempt; its bytes land too
            if localnet.ledger.landed(_signature(attempt.signature)) is None:
                _deliver(urls[UP_TO_DATE], attempt.raw_transaction)
        localnet.advance_slots(1)
        pause.wait(0.05)

    assert trade.balances() == _expected_after(trade, before), "the seller paid twice"
    assert [a.signature for a in desk.attempts()] == [first.signature]
    record = desk.settlement()
    assert record.status == "confirmed"
    assert record.confirmed_signature is None
    assert record.last_error is not None and "signature unknown" in record.last_error


def _attempt_landed_by_dead_node(desk: Desk) -> storage.AttemptRecord:
    """As ``dead-node``: claim for 60 s, build the attempt as the actor would (its
    ``_draft``), write it ahead, deliver it and let it land; then die."""
    engine, localnet = desk.engine, desk.trade.localnet
    queue = storage.settlement_queue(engine, "dead-node")
    (claim,) = queue.claim(1, 60)
    draft = _draft_as_actor(desk, claim)
    storage.record_attempts(queue, [draft])
    (attempt,) = desk.attempts()
    _deliver(localnet.urls[UP_TO_DATE], attempt.raw_transaction)
    localnet.advance_slots(2)
    return attempt


def _draft_as_actor(desk: Desk, claim: storage.Claim) -> storage.AttemptDraft:
    """The attempt SettlementActor would sign now (same code path: ``draft_attempt``)."""
    trade, ledger = desk.trade, desk.trade.localnet.ledger
    produced = ledger.blockhash_at(ledger.slot)
    fresh = FreshBlockhash(
        str(produced.blockhash),
        produced.last_valid_block_height,
        ledger.slot,
        0.0,
        ledger.block_height,
    )
    work = SettlementWork(claim, 1e18, trade.fill, trade.market, [])
    return draft_attempt(
        work,
        signer_map(trade.fee_payer, trade.authority),
        fresh,
        1_000,
        FAST.compute_unit_limit,
    )


def _signature(text: str) -> Signature:
    return Signature.from_string(text)


def test_one_url_over_two_backends_that_disagree_never_settles_twice(
    desk: Desk, captured_logs: list[dict[str, Any]]
) -> None:
    """The same late landing, seen through ONE URL in front of two backends (a
    load-balanced provider, where nothing can be steered): requests alternate between
    an up-to-date backend and one LAG_SLOTS behind, so a height read from one and a
    "no status" from the other meet in one decision. Answers from behind decide
    nothing: the fill is settled once, with attempt 1, and the seller pays once."""
    trade, localnet = desk.trade, desk.trade.localnet
    urls = localnet.urls
    balanced = Faults(
        backends=(Faults(drop_sends=True), Faults(lag_slots=LAG_SLOTS, drop_sends=True))
    )
    localnet.set_faults(LAGGING, balanced)
    before = trade.balances()
    desk.start(height_url=urls[LAGGING], status_url=urls[LAGGING])
    _poll(lambda: bool(desk.attempts()), "attempt 1 was never written")
    (first,) = desk.attempts()
    lvbh = first.last_valid_block_height
    _advance_to_height(localnet, lvbh - 3)
    _deliver(urls[UP_TO_DATE], first.raw_transaction)
    localnet.advance_slots(1)
    landed = localnet.ledger.landed(_signature(first.signature))
    assert landed is not None and landed.err is None, "attempt 1 did not land late"
    _advance_to_height(localnet, lvbh + 2)
    # Through one URL the actor may read the height from either backend, so it may also
    # just wait; give the old code's mistake (expiring attempt 1) its chance, bounded.
    _settle_for(lambda: _expired(desk.recorder) or _deferred(captured_logs), 10.0)
    if _expired(desk.recorder):  # the bug: deliver attempt 2 (its sends are dropped)
        _poll(lambda: len(desk.attempts()) == 2, "attempt 2 was never written")
        _deliver(urls[UP_TO_DATE], desk.attempts()[1].raw_transaction)
        localnet.advance_slots(2)
    localnet.advance_slots(LAG_SLOTS + 3)
    desk.recorder.wait_for(
        lambda events: any(isinstance(e, Finished) for e in events), timeout_s=60
    )
    assert settled_fill_ids(urls[UP_TO_DATE], trade.authority.pubkey()) == {
        trade.fill.fill_id: 1
    }, "the fill was settled more than once on chain"
    assert trade.balances() == _expected_after(trade, before)


def _settle_for(predicate: Callable[[], bool], timeout_s: float) -> None:
    """Wait until ``predicate()`` holds or ``timeout_s`` passed, whichever is first."""
    pause = threading.Event()  # never set
    gives_up_at = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < gives_up_at:
        pause.wait(0.05)
