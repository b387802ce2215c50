"""SettlementActor against a real localnet (ticking slots), a real RpcRouter and
BlockhashActor, and a real database: fills written by ``record_match`` under a
market lease, settled on chain by the actor, checked on chain with solana-py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Processed
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import revoke
from spl.token.models import RevokeParams
from sqlalchemy import update
from sqlalchemy.engine import Engine

import storage
from actors.blockhash import BlockhashActor, BlockhashSettings
from actors.rpc import RpcRouter, RpcRouterConfig
from actors.settlement import (
    AttemptsExpired,
    Drain,
    Finished,
    GetSettlementState,
    SettlementActor,
    SettlementSettings,
    SettlementState,
    signer_map,
)
from localnet import LocalnetServer
from localnet.faults import Faults
from market import build_settlement_transaction, sign_order
from market.marker import marker_for
from storage.models import Settlement as SettlementRow
from storage.models import table_of
from supervision import ActorHandle, launch, set_tracing
from supervision.tracing import add_trace_sink, flush_traces, remove_trace_sink
from tests.conftest import Recorder
from tests.integration.market.conftest import Rpc, Trade, make_trade
from tests.support.chain_audit import settled_fill_ids, signature_status_exists

SLOT_MS = 10  # ticking slots: confirmations come, and blockhashes expire in ~2 s
FAST = SettlementSettings(
    claim_ttl_s=30.0, poll_interval_s=0.2, status_interval_s=0.05, resend_interval_s=0.2
)


pytestmark = [pytest.mark.localnet(slot_ms=SLOT_MS), pytest.mark.timeout(120)]


@dataclass
class Settler:
    """A trade's fill written to the database, and the actors that settle it."""

    trade: Trade
    engine: Engine
    recorder: Recorder
    actors: list[Any]
    handle: ActorHandle | None = None

    def start(
        self,
        settings: SettlementSettings = FAST,
        offset_s: float = 0.0,
        chain_cut_for_s: Callable[[], float] = lambda: 0.0,
    ) -> None:
        router = RpcRouter(RpcRouterConfig.from_urls(self.trade.localnet.urls))
        blockhash = BlockhashActor(
            _handle_of(router), BlockhashSettings(refresh_interval_s=0.05, max_age_s=1.0)
        )
        launch(router)
        launch(blockhash)
        settler = SettlementActor(
            self.engine,
            _handle_of(router),
            _handle_of(blockhash),
            signer_map(self.trade.fee_payer, self.trade.authority),
            node_id="node-a",
            settings=settings,
            listeners=(self.recorder.record,),
            db_time_offset_s=lambda: offset_s,
            chain_cut_for_s=chain_cut_for_s,
        )
        launch(settler)
        self.actors += [settler, blockhash, router]
        self.handle = _handle_of(settler)

    def stop(self) -> None:
        for actor in self.actors:
            actor.actor_ref.stop(timeout=10)
        self.actors.clear()

    def finished(self, timeout_s: float = 30.0) -> Finished:
        events = self.recorder.wait_for(
            lambda events: any(isinstance(e, Finished) for e in events), timeout_s
        )
        (event,) = [e for e in events if isinstance(e, Finished)]
        return event

    def state(self) -> SettlementState:
        assert self.handle is not None
        state: SettlementState = self.handle.ask(GetSettlementState()).get(timeout=5)
        return state

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
def settler(localnet: LocalnetServer, engine: Engine, recorder: Recorder) -> Iterator[Settler]:
    """A trade's market and both orders stored, and its fill recorded under a lease."""
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
    desk = Settler(trade, engine, recorder, [])
    try:
        yield desk
    finally:
        desk.stop()


def _expected_after(trade: Trade, before: dict[str, int]) -> dict[str, int]:
    fill = trade.fill
    return {
        "seller_base": before["seller_base"] - fill.base_atoms,
        "buyer_base": before["buyer_base"] + fill.base_atoms,
        "buyer_quote": before["buyer_quote"] - fill.quote_atoms,
        "seller_quote": before["seller_quote"] + fill.quote_atoms,
    }


def test_a_pending_settlement_lands_once_and_is_recorded_confirmed(settler: Settler) -> None:
    """The actor claims the pending settlement, writes one attempt ahead, sends it, and
    records it confirmed with its slot; both legs moved exactly, and the chain holds
    exactly one successful transaction with the fill's memo."""
    trade = settler.trade
    before = trade.balances()

    settler.start()
    finished = settler.finished()

    assert finished.outcome == "confirmed"
    assert trade.balances() == _expected_after(trade, before)
    record = settler.settlement()
    assert (record.status, record.confirmed_signature) == ("confirmed", finished.signature)
    assert [(a.attempt_number, a.state) for a in settler.attempts()] == [(1, "confirmed")]
    assert settled_fill_ids(trade.localnet.url, trade.authority.pubkey()) == {trade.fill.fill_id: 1}
    drained = Recorder()
    assert settler.handle is not None
    settler.handle.tell(Drain(drained.record))
    assert drained.wait_for(lambda events: events == [0])


def test_a_dropped_first_attempt_expires_and_only_the_second_lands(settler: Settler) -> None:
    """With every send dropped, the first attempt never lands; once its blockhash has
    expired (block height past its lastValidBlockHeight, no status, history searched)
    it is marked expired and a second attempt is made, which lands once the endpoint
    delivers again. The first signature stays unknown to the chain."""
    trade = settler.trade
    localnet = trade.localnet
    localnet.set_faults(0, Faults(drop_sends=True))
    before = trade.balances()

    settler.start()
    events = settler.recorder.wait_for(
        lambda events: any(isinstance(e, AttemptsExpired) for e in events), timeout_s=60
    )
    localnet.clear_faults(0)
    (expired,) = [e for e in events if isinstance(e, AttemptsExpired)]
    first = settler.attempts()
    finished = settler.finished(timeout_s=60)

    attempts = settler.attempts()
    assert [(a.attempt_number, a.state) for a in attempts[:1]] == [(1, "expired")]
    assert attempts[-1].state == "confirmed" and attempts[-1].signature == finished.signature
    assert expired.signatures == (first[0].signature,)
    assert finished.signature != first[0].signature
    assert not signature_status_exists(localnet.url, first[0].signature)
    assert trade.balances() == _expected_after(trade, before)
    assert settled_fill_ids(localnet.url, trade.authority.pubkey()) == {trade.fill.fill_id: 1}


def test_a_claim_taken_over_is_found_lost_at_renewal_and_dropped_at_once(
    settler: Settler,
) -> None:
    """While its attempt cannot land (sends dropped), the claim expires for another node,
    which takes it over. The next renewal (one statement for every claim held) finds it
    lost: the settlement leaves this actor's hands, its attempt is neither resent nor
    replaced, and the other node's claim is untouched."""
    trade = settler.trade
    trade.localnet.set_faults(0, Faults(drop_sends=True))
    settler.start(
        SettlementSettings(
            claim_ttl_s=3.0,
            poll_interval_s=60.0,
            status_interval_s=0.05,
            resend_interval_s=0.2,
        )
    )
    _poll(lambda: bool(settler.attempts()), "the attempt was never written")
    (attempt,) = settler.attempts()
    # node-b, standing past node-a's claim TTL, takes the settlement over.
    taker = storage.settlement_queue(settler.engine, "node-b", clock_offset_s=10.0)
    (taken,) = taker.claim(1, 60.0)
    _poll(lambda: settler.state().claims_lost == 1, "the lost claim was never noticed")
    state = settler.state()
    assert (state.in_flight, state.attempts_made) == (0, 1)
    assert [a.signature for a in settler.attempts()] == [attempt.signature]
    # node-b's claim holds: it can renew it, which node-a's renewals never disturbed.
    assert taker.renew(taken, 60.0).claim_token == taken.claim_token


def test_cut_from_the_chain_past_the_bound_it_sends_nothing_more_and_gives_its_claims_back(
    settler: Settler,
) -> None:
    """Its attempt sent but not landing (sends dropped), the node is then cut from every
    endpoint past ``chain_handover_s``: it stops resending and, once its last send is
    older than the request deadline (none can still be in the router's hands), gives the
    claim back at once (not at its expiry, 60 s away): another node claims it now."""
    trade = settler.trade
    trade.localnet.set_faults(0, Faults(drop_sends=True))
    cut = {"s": 0.0}
    settler.start(
        SettlementSettings(
            claim_ttl_s=60.0,
            poll_interval_s=60.0,
            status_interval_s=0.05,
            resend_interval_s=0.2,
            request_deadline_s=0.5,
            chain_handover_s=5.0,
        ),
        chain_cut_for_s=lambda: cut["s"],
    )
    _poll(lambda: settler.state().resends >= 1, "the attempt was never resent")
    cut["s"] = 5.0
    _poll(lambda: settler.state().in_flight == 0, "the claim was never given back")
    resends = settler.state().resends
    taker = storage.settlement_queue(settler.engine, "node-b")
    (taken,) = taker.claim(1, 60.0)  # released, not expired: no clock offset needed
    assert str(taken.row_id) == trade.fill.fill_id
    state = settler.state()
    assert (state.attempts_made, state.resends, state.in_flight) == (1, resends, 0)
    assert len(settler.attempts()) == 1


def _poll(predicate: Callable[[], bool], failure: str, timeout_s: float = 30.0) -> None:
    """Wait until ``predicate()`` holds, asking every 50 ms: nothing signals these
    database and actor states, so a bounded poll it is."""
    pause = threading.Event()  # never set
    gives_up_at = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < gives_up_at, failure
        pause.wait(0.05)


def test_a_revoked_delegate_fails_the_settlement_and_moves_nothing(settler: Settler) -> None:
    """The seller revokes the delegate between match and settlement: the attempt lands
    failed, the settlement is failed with a reason naming the base leg, no token moves,
    and the sell order is set aside as unfunded."""
    trade = settler.trade
    _revoke_seller(trade)
    before = trade.balances()

    settler.start()
    finished = settler.finished()

    assert finished.outcome == "failed" and finished.leg == "base"
    record = settler.settlement()
    assert record.status == "failed"
    assert record.last_error is not None and "base leg" in record.last_error
    assert "OwnerMismatch" in record.last_error
    assert trade.balances() == before
    sell = storage.get_order(settler.engine, trade.sell.order_id)
    assert sell is not None and sell.status == "unfunded"
    assert settled_fill_ids(trade.localnet.url, trade.authority.pubkey()) == {}


def test_recovery_sends_an_attempt_written_but_never_sent_instead_of_a_new_one(
    settler: Settler,
) -> None:
    """A node wrote an attempt ahead and died before sending it. Once its claim has
    expired, the actor asks the chain first, finds no status and a valid blockhash,
    sends those very bytes, and confirms that signature: no second attempt."""
    trade = settler.trade
    signature = _write_attempt_as_dead_node(settler)
    before = trade.balances()

    settler.start(offset_s=120.0)  # the dead node's claim (60 s) has expired by then
    finished = settler.finished()

    assert finished.signature == signature
    assert [(a.attempt_number, a.state) for a in settler.attempts()] == [(1, "confirmed")]
    assert trade.balances() == _expected_after(trade, before)


def test_recovery_confirms_an_attempt_that_landed_before_the_node_died(settler: Settler) -> None:
    """A node sent its attempt, which landed, and died before recording it. The actor
    finds the landed signature on chain and records it: nothing is sent again and the
    fill is settled once."""
    trade = settler.trade
    before = trade.balances()
    signature = _write_attempt_as_dead_node(settler, send=True)
    landed = trade.balances()
    assert landed == _expected_after(trade, before)

    settler.start(offset_s=120.0)
    finished = settler.finished()

    assert (finished.outcome, finished.signature) == ("confirmed", signature)
    assert trade.balances() == landed
    assert settler.state().attempts_made == 0
    assert settled_fill_ids(trade.localnet.url, trade.authority.pubkey()) == {trade.fill.fill_id: 1}


# -- helpers -------------------------------------------------------------------------------


def _revoke_seller(trade: Trade) -> None:
    instruction = revoke(
        RevokeParams(
            program_id=TOKEN_PROGRAM_ID,
            account=trade.accounts["seller_base"],
            owner=trade.seller.pubkey(),
        )
    )
    blockhash = trade.rpc(lambda rpc: rpc.get_latest_blockhash(Confirmed)).value.blockhash
    transaction = Transaction.new_signed_with_payer(
        [instruction], trade.seller.pubkey(), [trade.seller], blockhash
    )
    _send_and_wait(trade.rpc, bytes(transaction))


def _send_and_wait(rpc: Rpc, raw: bytes) -> str:
    async def send(client: AsyncClient) -> str:
        answer = await client.send_raw_transaction(raw, TxOpts(skip_preflight=True))
        await client.confirm_transaction(answer.value, Processed, sleep_seconds=0.01)
        return str(answer.value)

    return rpc(send)


def _write_attempt_as_dead_node(settler: Settler, *, send: bool = False) -> str:
    """Claim the settlement as ``dead-node`` for 60 s, write an attempt ahead, and
    (``send``) land it; then the node "dies" without recording anything more."""
    trade, engine = settler.trade, settler.engine
    queue = storage.settlement_queue(engine, "dead-node")
    (claim,) = queue.claim(1, 60)
    latest = trade.rpc(lambda rpc: rpc.get_latest_blockhash(Confirmed)).value
    transaction = build_settlement_transaction(
        trade.market,
        trade.fill,
        fee_payer=trade.fee_payer,
        settlement_authority=trade.authority,
        recent_blockhash=Hash.from_string(str(latest.blockhash)),
        compute_unit_price_micro_lamports=1_000,
    )
    storage.record_attempt(
        queue,
        claim,
        signature=str(transaction.signature),
        raw_transaction=transaction.raw_bytes,
        blockhash=str(latest.blockhash),
        last_valid_block_height=latest.last_valid_block_height,
    )
    if send:
        _send_and_wait(trade.rpc, transaction.raw_bytes)
    return str(transaction.signature)


def test_an_attempt_written_whose_commit_answer_was_lost_is_found_and_sent_not_duplicated(
    settler: Settler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch of attempts commits but the answer is lost (the database says
    unavailable). The retry is refused (an attempt is already live); the actor re-reads
    the stored attempt, asks the chain, sends those bytes, and confirms that signature."""
    real = storage.record_attempts
    calls: list[int] = []

    def commit_then_fail(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        results = real(*args, **kwargs)
        if len(calls) == 1:
            raise storage.DatabaseUnavailable("the answer to the commit was lost")
        return results

    monkeypatch.setattr(storage, "record_attempts", commit_then_fail)
    settler.start()
    finished = settler.finished()

    assert finished.outcome == "confirmed"
    assert [(a.attempt_number, a.state) for a in settler.attempts()] == [(1, "confirmed")]
    assert finished.signature == settler.attempts()[0].signature
    assert len(calls) >= 2


def test_a_squatted_marker_quarantines_the_settlement_and_never_settles_or_retries_it(
    settler: Settler, captured_logs: list[dict[str, Any]]
) -> None:
    """A third party funds the fill's marker address before the attempt lands: the
    attempt lands failed at the create (AccountAlreadyInUse). Nothing of ours created
    the marker (its history has only the squatter's transfer), so the settlement is
    neither confirmed nor failed-and-retried: it is quarantined, logged at ERROR, and no
    second attempt is ever signed. No token moved."""
    trade = settler.trade
    squatter = trade.localnet.fixtures.fund_wallet()
    marker = marker_for(trade.authority, trade.fill.fill_id)
    blockhash = trade.rpc(lambda rpc: rpc.get_latest_blockhash(Confirmed)).value.blockhash
    funding = Transaction.new_signed_with_payer(
        [
            transfer(
                TransferParams(
                    from_pubkey=squatter.pubkey(), to_pubkey=marker.address, lamports=1_000_000
                )
            )
        ],
        squatter.pubkey(),
        [squatter],
        blockhash,
    )
    _send_and_wait(trade.rpc, bytes(funding))
    before = trade.balances()

    settler.start()
    _poll(lambda: settler.settlement().status == "quarantined", "never quarantined")

    assert trade.balances() == before
    (attempt,) = settler.attempts()
    assert attempt.marker_address == str(marker.address)
    record = settler.settlement()
    assert record.last_error is not None and "third party" in record.last_error
    (entry,) = storage.list_quarantined(settler.engine)
    assert (entry.kind, entry.row_id) == ("settlement", trade.fill.fill_id)
    assert any(
        r["extra"].get("action") == "settlement.marker_squatted" and r["level"].name == "ERROR"
        for r in captured_logs
    )
    assert settler.state().attempts_made == 1


def test_a_recovered_settlements_own_messages_run_under_its_stored_trace(
    settler: Settler, captured_logs: list[dict[str, Any]]
) -> None:
    """A settlement stored under trace ``journey-7`` (its order's), written ahead by a
    node that died: the actor taking it over claims it, recovers it and sends the attempt
    under ``journey-7`` (the step lines and the RPC request and its reply), so its journey
    is found by that trace id, not only by its ids."""
    with settler.engine.begin() as connection:
        connection.execute(update(table_of(SettlementRow)).values(trace_id="journey-7"))
    signature = _write_attempt_as_dead_node(settler)
    hops: list[Mapping[str, Any]] = []  # every trace line's fields, as the OTel export gets them
    add_trace_sink(hops.append)
    set_tracing(True)
    try:
        settler.start(offset_s=120.0)
        assert settler.finished().signature == signature
    finally:
        set_tracing(False)
        assert flush_traces(5)
        remove_trace_sink(hops.append)
    extras = [r["extra"] for r in captured_logs]
    own = ("settlement.claimed", "settlement.recovering", "settlement.sent")
    steps = {(e["action"], e.get("trace_id")) for e in extras if e.get("action") in own}
    assert steps == {(action, "journey-7") for action in own}
    received = {
        e["message_type"]
        for e in hops
        if e.get("action") == "trace.receive" and e.get("trace_id") == "journey-7"
    }
    assert {"RpcRequest", "_Sent"} <= received, received
