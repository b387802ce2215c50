"""MarkerReclaimActor against a real localnet (manual slots), a real RpcRouter and
BlockhashActor, and a real database (SQLite file and PostgreSQL).

Markers are created on chain by the test (``CreateAccountWithSeed`` with the
market's fee payer and settlement authority, as a settlement attempt does), and
their settlements written confirmed with attempts naming them. Slots advance
only when the test says: block height = slot, finalized = tip - 32.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from solana.rpc.commitment import Processed
from solana.rpc.models import TxOpts
from solders.message import Message
from solders.transaction import VersionedTransaction
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

import storage
from actors.blockhash import BlockhashActor, BlockhashSettings
from actors.lock_actor import MarketsChanged
from actors.marker_reclaim import (
    GetReclaimState,
    MarkerReclaimActor,
    ReclaimSettings,
    ReclaimState,
    RoundEnded,
    RunRound,
)
from actors.rpc import RpcRouter, RpcRouterConfig
from actors.rpc.messages import RpcRequest
from actors.settlement import signer_map
from localnet import LocalnetServer
from market.marker import (
    MARKER_RENT_LAMPORTS,
    RECLAIM_MARGIN_BLOCKS,
    marker_create_instruction,
    marker_for,
)
from storage.markers import marker_totals
from storage.models import Fill, Settlement, SettlementAttempt, SettlementMarker, table_of
from supervision import ActorHandle, ManualClock, launch
from tests.conftest import Recorder
from tests.integration.market.conftest import Trade, make_trade
from tests.integration.storage import seed

pytestmark = pytest.mark.timeout(180)

FINALITY_SLOTS = 32  # confirmation 1 + finalization 31: finalized = tip - 32
FEE_PER_SIGNATURE = 5_000
MARKERS_PER_CREATE = 4


class SimulatedCrash(Exception):
    """Raised by the crash hook: the actor dies there, as a killed process would."""


def _handle_of(actor: Any) -> ActorHandle:
    handle = ActorHandle(actor.name)
    handle.attach(actor.actor_inbox)
    return handle


@dataclass
class SentWatch:
    """Passes requests to the router; counts the answered sendTransactions, so a test
    knows a reclaim reached the chain before it moves slots (no sleeping)."""

    router: ActorHandle
    answered: Recorder = field(default_factory=Recorder)

    def tell(self, message: Any) -> Any:
        if isinstance(message, RpcRequest) and message.method == "sendTransaction":
            reply = message.reply

            def observed(outcome: Any) -> None:
                reply(outcome)
                self.answered.record(outcome)

            message = replace(message, reply=observed)
        return self.router.tell(message)


@dataclass
class Desk:
    """A market with its keys on chain and in the database, and reclaim actors on it."""

    localnet: LocalnetServer
    engine: Engine
    trade: Trade
    lease: storage.Lease
    rounds: Recorder = field(default_factory=Recorder)
    actors: list[Any] = field(default_factory=list)
    reclaim: ActorHandle | None = None
    sends: SentWatch | None = None
    fills: int = 0
    blockhash_clock: ManualClock = field(default_factory=ManualClock)

    @property
    def market_id(self) -> str:
        return self.trade.market.market_id

    def tip(self) -> int:
        return self.localnet.advance_slots(0)

    def finalized_height(self) -> int:
        return self.tip() - FINALITY_SLOTS

    def advance_to_finalized(self, height: int) -> None:
        """Advance until the finalized block height is ``height``."""
        missing = height - self.finalized_height()
        assert missing >= 0, f"already past finalized height {height}"
        self.localnet.advance_slots(missing)

    def create_markers(self, count: int) -> tuple[list[str], int]:
        """``count`` markers created on chain (landed), their settlements written
        confirmed with one attempt each; (settlement ids, that attempt's lvbh)."""
        ids: list[str] = []
        latest = self.trade.rpc(lambda rpc: rpc.get_latest_blockhash(Processed)).value
        for start in range(0, count, MARKERS_PER_CREATE):
            fills = [self._next_fill() for _ in range(min(MARKERS_PER_CREATE, count - start))]
            self._send_creates(fills, latest.blockhash)
            ids += fills
        self.localnet.advance_slots(2)  # land
        for fill_id in ids:
            assert self.lamports(self.marker_address(fill_id)) == MARKER_RENT_LAMPORTS
            self.write_settlement(fill_id, [latest.last_valid_block_height])
        return ids, latest.last_valid_block_height

    def _next_fill(self) -> str:
        self.fills += 1
        return f"fill-{self.fills:04d}"

    def _send_creates(self, fill_ids: list[str], blockhash: Any) -> None:
        trade = self.trade
        instructions = [
            marker_create_instruction(
                fee_payer=trade.fee_payer.pubkey(),
                settlement_authority=trade.authority.pubkey(),
                marker=marker_for(trade.authority, fill_id),
            )
            for fill_id in fill_ids
        ]
        message = Message.new_with_blockhash(instructions, trade.fee_payer.pubkey(), blockhash)
        transaction = VersionedTransaction(message, [trade.fee_payer, trade.authority])
        trade.rpc(
            lambda rpc: rpc.send_raw_transaction(bytes(transaction), TxOpts(skip_preflight=True))
        )

    def marker_address(self, fill_id: str) -> Any:
        return marker_for(self.trade.authority, fill_id).address

    def lamports(self, address: Any) -> int:
        return self.localnet.fixtures.lamports(address)

    def write_settlement(self, fill_id: str, heights: list[int]) -> None:
        """A confirmed settlement of ``fill_id`` with attempts valid until ``heights``,
        each naming the fill's marker."""
        address = str(self.marker_address(fill_id))
        with storage.write_transaction(self.engine) as connection:
            connection.execute(
                insert(table_of(Fill)).values(
                    id=fill_id,
                    market_id=self.market_id,
                    maker_order_id="maker",
                    taker_order_id="taker",
                    price_atoms=100,
                    base_atoms=1,
                    quote_atoms=100,
                    fencing_token=1,
                )
            )
            connection.execute(
                insert(table_of(Settlement)).values(
                    id=fill_id, fill_id=fill_id, market_id=self.market_id, status="confirmed"
                )
            )
            for number, height in enumerate(heights, start=1):
                connection.execute(
                    insert(table_of(SettlementAttempt)).values(
                        settlement_id=fill_id,
                        attempt_number=number,
                        signature=f"sig-{fill_id}-{number}",
                        raw_transaction=b"x",
                        blockhash="11111111111111111111111111111111",
                        last_valid_block_height=height,
                        claim_token=1,
                        state="confirmed" if number == len(heights) else "expired",
                        marker_address=address,
                    )
                )

    def start(self, crash: Callable[[str], None] = lambda _point: None) -> None:
        router = RpcRouter(RpcRouterConfig.from_urls(self.localnet.urls))
        launch(router)
        self.sends = SentWatch(_handle_of(router))
        # On a clock of its own that each round moves past the blockhash's max age: the
        # blockhash handed out is always fetched after the slots the test advanced.
        blockhash = BlockhashActor(
            _handle_of(router),
            BlockhashSettings(refresh_interval_s=3600, max_age_s=10),
            clock=self.blockhash_clock,
        )
        launch(blockhash)
        trade = self.trade
        actor = MarkerReclaimActor(
            self.engine,
            self.sends,
            _handle_of(blockhash),
            signer_map(trade.fee_payer, trade.authority),
            settings=ReclaimSettings(interval_s=3600),
            crash=crash,
            listeners=(self.rounds.record,),
        )
        launch(actor)
        self.actors += [actor, blockhash, router]
        self.reclaim = _handle_of(actor)
        self.reclaim.tell(MarketsChanged((self.lease,), ()))

    def round(self) -> RoundEnded:
        """Run one round and wait for its end."""
        assert self.reclaim is not None
        before = len(self.rounds.snapshot())
        self.blockhash_clock.advance(11)
        self.reclaim.tell(RunRound())
        events = self.rounds.wait_for(lambda events: len(events) > before, timeout_s=20)
        ended: RoundEnded = events[before]
        return ended

    def state(self) -> ReclaimState:
        assert self.reclaim is not None
        answer: ReclaimState = self.reclaim.ask(GetReclaimState()).get(timeout=5)
        return answer

    def stop(self) -> None:
        for actor in self.actors:
            actor.actor_ref.stop(timeout=10)
        self.actors.clear()

    def markers(self) -> dict[str, tuple[str, int, str | None]]:
        table = table_of(SettlementMarker)
        query = select(
            table.c.settlement_id, table.c.state, table.c.lamports, table.c.reclaim_signature
        )
        with storage.read_transaction(self.engine) as connection:
            return {row[0]: (row[1], int(row[2]), row[3]) for row in connection.execute(query)}


@pytest.fixture
def desk(localnet: LocalnetServer, engine: Engine) -> Iterator[Desk]:
    trade = make_trade(localnet)
    storage.insert_market(engine, trade.market)
    seed.order(engine, "maker", trade.market.market_id, "sell", 1)
    seed.order(engine, "taker", trade.market.market_id, "buy", 2)
    lease = storage.LeaseStore(engine, "node-a").acquire(
        storage.market_key(trade.market.market_id), 600
    )
    assert lease is not None
    desk = Desk(localnet, engine, trade, lease)
    try:
        yield desk
    finally:
        desk.stop()


def test_markers_are_reclaimed_only_past_the_margin_and_the_fee_payer_gets_the_rent_back(
    desk: Desk,
) -> None:
    """Nine markers are recorded open; nothing is sent while the finalized height is at
    most the attempts' last valid block height + 300; one block later two packed
    transactions close them all (the fee payer gets 9 x 890,880 back, less the fees);
    they count as reclaimed only once gone at finalized, and exactly once."""
    ids, last_valid = desk.create_markers(9)
    payer = desk.trade.fee_payer.pubkey()
    desk.start()

    first = desk.round()
    assert first.markers_sent == 0
    assert {state for state, _, _ in desk.markers().values()} == {"open"}
    assert marker_totals(desk.engine).lamports_held == 9 * MARKER_RENT_LAMPORTS

    desk.advance_to_finalized(last_valid + RECLAIM_MARGIN_BLOCKS)
    at_margin = desk.round()
    assert (at_margin.finalized_block_height, at_margin.markers_sent) == (
        last_valid + RECLAIM_MARGIN_BLOCKS,
        0,
    )
    assert all(desk.lamports(desk.marker_address(fill)) for fill in ids)

    desk.localnet.advance_slots(1)
    before = desk.lamports(payer)
    past = desk.round()
    assert (past.markers_sent, past.transactions_sent) == (9, 2)
    assert {state for state, _, _ in desk.markers().values()} == {"reclaiming"}
    assert desk.sends is not None
    desk.sends.answered.wait_for(lambda answers: len(answers) >= 2)
    desk.localnet.advance_slots(2)

    assert desk.lamports(payer) == before + 9 * MARKER_RENT_LAMPORTS - 2 * 2 * FEE_PER_SIGNATURE
    assert not any(desk.lamports(desk.marker_address(fill)) for fill in ids)
    not_final = desk.round()
    assert (not_final.reclaimed, not_final.markers_sent) == (0, 0)

    desk.localnet.advance_slots(FINALITY_SLOTS)
    final = desk.round()
    assert final.reclaimed == 9
    assert desk.round().reclaimed == 0
    totals = marker_totals(desk.engine)
    assert (totals.open, totals.reclaiming, totals.lamports_held) == (0, 0, 0)
    assert (totals.reclaimed, totals.lamports_reclaimed, totals.missing) == (
        9,
        9 * MARKER_RENT_LAMPORTS,
        0,
    )
    assert desk.state().lamports_reclaimed == 9 * MARKER_RENT_LAMPORTS


def test_a_later_attempt_keeps_its_settlements_marker_open_until_it_too_is_past_the_margin(
    desk: Desk,
) -> None:
    """The third-attempt case: two markers created alike, but one settlement also had
    an attempt valid 100 blocks longer. Past the margin of the first heights only the
    other marker is closed; this one stays (an attempt could still land, and closing
    it would let that attempt settle again) until its latest attempt is past too."""
    (plain, third), last_valid = desk.create_markers(2)
    desk.start()
    assert desk.round().markers_sent == 0  # both recorded open, highest height: last_valid
    # The late attempt is known only after the marker's row was written: the decision
    # must reread every attempt, not trust the height stored at discovery.
    with storage.write_transaction(desk.engine) as connection:
        connection.execute(
            insert(table_of(SettlementAttempt)).values(
                settlement_id=third,
                attempt_number=2,
                signature=f"sig-{third}-late",
                raw_transaction=b"x",
                blockhash="11111111111111111111111111111111",
                last_valid_block_height=last_valid + 100,
                claim_token=1,
                state="expired",
                marker_address=str(desk.marker_address(third)),
            )
        )
    desk.advance_to_finalized(last_valid + RECLAIM_MARGIN_BLOCKS + 1)

    first = desk.round()
    assert (first.markers_judged, first.markers_sent) == (2, 1)
    assert desk.markers()[plain][0] == "reclaiming" and desk.markers()[third][0] == "open"

    desk.advance_to_finalized(last_valid + 100 + RECLAIM_MARGIN_BLOCKS)
    assert desk.round().markers_sent == 0
    assert desk.lamports(desk.marker_address(third)) == MARKER_RENT_LAMPORTS
    desk.localnet.advance_slots(1)
    assert desk.round().markers_sent == 1
    assert desk.markers()[third][0] == "reclaiming"


@pytest.mark.parametrize("point", ["marker_reclaim_written", "marker_reclaim_sent"])
def test_an_actor_killed_during_a_reclaim_is_recovered_by_the_next_and_counted_once(
    desk: Desk, point: str
) -> None:
    """The actor dies at a crash point: after the reclaim was written ahead (never
    sent), or after it was sent. A new instance finds the ``reclaiming`` rows and
    finishes: the unsent one is replaced by a new reclaim once its blockhash expired,
    the sent one is seen gone at finalized. Either way every marker is reclaimed once,
    its lamports counted once, and the fee payer got each marker's rent back once."""
    ids, last_valid = desk.create_markers(3)
    payer = desk.trade.fee_payer.pubkey()
    crashed = threading.Event()

    def crash(at: str) -> None:
        if at == point and not crashed.is_set():
            crashed.set()
            raise SimulatedCrash(at)

    desk.start(crash)
    desk.advance_to_finalized(last_valid + RECLAIM_MARGIN_BLOCKS + 1)
    before = desk.lamports(payer)
    assert desk.reclaim is not None
    desk.blockhash_clock.advance(11)
    desk.reclaim.tell(RunRound())
    assert crashed.wait(20)
    assert desk.actors[0].exited.wait(10)
    (first_signature,) = {signature for _, _, signature in desk.markers().values()}
    assert {state for state, _, _ in desk.markers().values()} == {"reclaiming"}
    if point == "marker_reclaim_sent":
        assert desk.sends is not None
        desk.sends.answered.wait_for(lambda answers: len(answers) >= 1)
    desk.stop()

    desk.start()
    desk.localnet.advance_slots(2)
    assert desk.round().markers_sent == 0  # in flight (or maybe): wait for its expiry
    if point == "marker_reclaim_written":
        assert all(desk.lamports(desk.marker_address(fill)) for fill in ids)
        desk.localnet.advance_slots(151 + FINALITY_SLOTS)
        retried = desk.round()
        assert (retried.markers_sent, retried.transactions_sent) == (3, 1)
        assert desk.sends is not None
        desk.sends.answered.wait_for(lambda answers: len(answers) >= 1)
        desk.localnet.advance_slots(2)
    desk.localnet.advance_slots(FINALITY_SLOTS)
    assert desk.round().reclaimed == 3
    assert desk.round().reclaimed == 0

    signatures = {signature for _, _, signature in desk.markers().values()}
    assert (signatures == {first_signature}) == (point == "marker_reclaim_sent")
    assert desk.lamports(payer) == before + 3 * MARKER_RENT_LAMPORTS - 2 * FEE_PER_SIGNATURE
    totals = marker_totals(desk.engine)
    assert (totals.reclaimed, totals.lamports_reclaimed, totals.lamports_held) == (
        3,
        3 * MARKER_RENT_LAMPORTS,
        0,
    )


def test_a_node_whose_market_lease_was_taken_over_sends_nothing_and_drops_the_market(
    desk: Desk,
) -> None:
    """The actor still believes it holds the market (nobody told it yet), but another
    node took the lease over: the write ahead of the reclaim is fenced by the old
    token and refused, so nothing is sent, the marker stays, and the actor stops
    acting on that market at once."""
    (fill_id,), last_valid = desk.create_markers(1)
    other = storage.LeaseStore(desk.engine, "node-b")
    storage.LeaseStore(desk.engine, "node-a").release(desk.lease)
    assert other.acquire(storage.market_key(desk.market_id), 600) is not None
    desk.start()
    desk.advance_to_finalized(last_valid + RECLAIM_MARGIN_BLOCKS + 1)

    ended = desk.round()

    assert ended.markers_sent == 0
    assert desk.markers()[fill_id][0] == "open"
    assert desk.lamports(desk.marker_address(fill_id)) == MARKER_RENT_LAMPORTS
    assert desk.state().markets == ()
    assert desk.round().finalized_slot is None  # no market held: no round at all
