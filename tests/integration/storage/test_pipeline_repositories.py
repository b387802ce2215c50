"""The matching pipeline's repositories on both engines: markets, orders, the fenced
match write, settlement attempts under claims, recovery and reconciliation.

Orders are real ``market.SignedOrder``s signed with solders keypairs, and fills
come from ``market.match``, so what is stored is what the actors will store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from sqlalchemy import event, func, inspect, select, update
from sqlalchemy.engine import Engine

import market as domain
from storage import (
    Claim,
    ClaimLost,
    ClaimQueue,
    DuplicateEntry,
    IntegrityViolation,
    Lease,
    LeaseLost,
    LeaseStore,
    StateConflict,
    confirm_settlement,
    current_revision,
    downgrade,
    expected_balance_changes,
    fail_settlement,
    get_fill,
    get_market,
    get_order,
    get_settlement,
    head_revision,
    insert_market,
    list_attempts,
    list_fills,
    list_markets,
    list_open_orders,
    load_book,
    mark_attempt,
    mark_order_cancelled,
    mark_order_expired,
    mark_order_funded,
    mark_order_unfunded,
    market_key,
    next_fill_sequence,
    read_transaction,
    record_attempt,
    record_match,
    record_match_result,
    settlement_queue,
    settlements_to_recover,
    store_order,
    store_orders,
    upgrade,
)
from storage.models import Base, Fill, Order, Settlement, SettlementAttempt, TransactionHistory
from tests.signed_cancels import UNCHECKED
from tests.unit.market.factories import make_market

NOW_S = 1_800_000_000
EXPIRY_S = NOW_S + 3_600
TTL_S = 30.0
# A contender standing this far in the future sees every lease and claim above expired.
TAKEOVER_S = TTL_S + 30
LOT = 1_000


def _market(market_id: str = "SOL-USDC") -> domain.Market:
    return make_market(market_id=market_id)


def _signed(
    market: domain.Market,
    maker: Keypair,
    side: domain.Side,
    price_atoms: int,
    size_atoms: int,
    *,
    client_order_id: int = 1,
    nonce: int = 1,
    expiry_s: int = EXPIRY_S,
) -> domain.SignedOrder:
    order = domain.Order(
        market_id=market.market_id,
        side=side,
        price_atoms=price_atoms,
        size_atoms=size_atoms,
        maker=maker.pubkey(),
        pay_account=Keypair().pubkey(),
        receive_account=Keypair().pubkey(),
        client_order_id=client_order_id,
        expiry_s=expiry_s,
        nonce=nonce,
    )
    return domain.sign_order(order, maker)


def _count(engine: Engine, model: type[Base]) -> int:
    with read_transaction(engine) as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


@dataclass(frozen=True)
class Matched:
    """Two resting sells and a buy that crosses both, matched but not yet recorded.

    alice sells 3 lots at 100, bob 2 lots at 110; carol buys 4 lots at 120 and
    fills alice's 3 lots at 100, then 1 of bob's at 110.
    """

    market: domain.Market
    alice: domain.SignedOrder
    bob: domain.SignedOrder
    carol: domain.SignedOrder
    result: domain.MatchResult
    leases: LeaseStore
    lease: Lease


@pytest.fixture
def matched(engine: Engine) -> Iterator[Matched]:
    market = _market()
    insert_market(engine, market)
    alice = _signed(market, Keypair(), domain.Side.SELL, 100, 3 * LOT)
    bob = _signed(market, Keypair(), domain.Side.SELL, 110, 2 * LOT)
    carol = _signed(market, Keypair(), domain.Side.BUY, 120, 4 * LOT)
    store_order(engine, alice)
    store_order(engine, bob)
    book = load_book(engine, market)
    store_order(engine, carol)
    result = domain.match(book, carol.order, now_s=NOW_S)
    leases = LeaseStore(engine, "node-a")
    lease = leases.acquire(market_key(market.market_id), TTL_S)
    assert lease is not None
    yield Matched(market, alice, bob, carol, result, leases, lease)


def _record(engine: Engine, matched: Matched) -> None:
    assert record_match_result(engine, matched.lease, matched.result).recorded


def _claim(
    engine: Engine, claimer: str = "node-a", offset_s: float = 0.0
) -> tuple[ClaimQueue, Claim]:
    queue = settlement_queue(engine, claimer, clock_offset_s=offset_s)
    claims = queue.claim(1, TTL_S)
    assert len(claims) == 1
    return queue, claims[0]


def _attempt(queue: ClaimQueue, claim: Claim, height: int = 1_000) -> str:
    signature = str(Keypair().sign_message(b"settlement"))
    record_attempt(
        queue,
        claim,
        signature=signature,
        raw_transaction=b"\x01signed-transaction-bytes",
        blockhash=str(Hash.new_unique()),
        last_valid_block_height=height,
    )
    return signature


# --- markets -----------------------------------------------------------------------


def test_a_stored_market_reads_back_as_the_same_domain_market(engine: Engine) -> None:
    """insert_market keeps every field (lot, tick, fee payer too); get and list return it."""
    market, other = _market("SOL-USDC"), _market("BONK-USDC")
    insert_market(engine, market)
    insert_market(engine, other, status="paused")
    assert get_market(engine, "SOL-USDC") == market
    assert get_market(engine, "nope") is None
    assert list_markets(engine) == [other, market]
    assert list_markets(engine, statuses=("active",)) == [market]


def test_storing_a_market_id_twice_is_a_duplicate_entry_naming_market_id(engine: Engine) -> None:
    """A second market with a taken id is refused with DuplicateEntry(field="market_id")."""
    insert_market(engine, _market())
    with pytest.raises(DuplicateEntry, match="market_id") as refused:
        insert_market(engine, _market())
    assert refused.value.field == "market_id"
    assert isinstance(refused.value, IntegrityViolation)


# --- orders ------------------------------------------------------------------------


def test_a_stored_order_reads_back_as_the_signed_order_and_still_verifies(engine: Engine) -> None:
    """get_order rebuilds the exact SignedOrder (u64 client id and expiry too); its signature verifies."""
    market = _market()
    insert_market(engine, market)
    signed = _signed(
        market,
        Keypair(),
        domain.Side.BUY,
        50,
        2 * LOT,
        client_order_id=2**64 - 1,
        expiry_s=2**64 - 1,
    )
    stored = store_order(engine, signed)
    fetched = get_order(engine, signed.order_id)
    assert fetched is not None
    assert fetched.signed == signed
    fetched.signed.verify()
    assert (fetched.remaining_atoms, fetched.status) == (2 * LOT, "open")
    assert fetched.created_at == stored.created_at
    assert get_order(engine, "11111111111111111111111111111111") is None


@pytest.mark.parametrize("field", ["order_id", "client_order_id", "nonce"])
def test_a_duplicate_order_is_refused_naming_the_field_and_nothing_is_stored(
    engine: Engine, field: str
) -> None:
    """The same terms again, or another order reusing the maker's client order id or nonce,
    raises DuplicateEntry naming that field, and leaves one order stored."""
    market = _market()
    insert_market(engine, market)
    maker = Keypair()
    first = _signed(market, maker, domain.Side.SELL, 100, LOT, client_order_id=7, nonce=9)
    store_order(engine, first)
    again = {
        "order_id": first,
        "client_order_id": _signed(
            market, maker, domain.Side.SELL, 100, LOT, client_order_id=7, nonce=10
        ),
        "nonce": _signed(market, maker, domain.Side.SELL, 100, LOT, client_order_id=8, nonce=9),
    }[field]
    with pytest.raises(DuplicateEntry) as refused:
        store_order(engine, again)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}:")
    assert _count(engine, Order) == 1


def test_an_order_for_an_unknown_market_is_refused_naming_market_id(engine: Engine) -> None:
    """A foreign-key failure on the market comes out as IntegrityViolation naming market_id."""
    signed = _signed(_market("GHOST"), Keypair(), domain.Side.BUY, 100, LOT)
    with pytest.raises(IntegrityViolation, match=r"^market_id: no market 'GHOST'"):
        store_order(engine, signed)
    assert _count(engine, Order) == 0


def test_a_nonce_beyond_the_column_is_refused_naming_nonce(engine: Engine) -> None:
    """orders.nonce is a BIGINT: a u64 nonce past 2^63-1 is refused up front, naming the field."""
    market = _market()
    insert_market(engine, market)
    signed = _signed(market, Keypair(), domain.Side.BUY, 100, LOT, nonce=2**63)
    with pytest.raises(IntegrityViolation, match=r"^nonce:"):
        store_order(engine, signed)
    assert _count(engine, Order) == 0


def test_open_orders_are_listed_in_arrival_order_and_load_into_a_book(engine: Engine) -> None:
    """list_open_orders leaves out unfunded and cancelled orders; load_book rests the rest best first."""
    market = _market()
    insert_market(engine, market)
    orders = [
        _signed(market, Keypair(), domain.Side.BUY, price, LOT) for price in (90, 100, 80, 70)
    ]
    for signed in orders:
        store_order(engine, signed)
    assert mark_order_unfunded(engine, orders[2].order_id)
    assert mark_order_cancelled(engine, orders[3].order_id, UNCHECKED)
    listed = list_open_orders(engine, market.market_id)
    assert [stored.order_id for stored in listed] == [orders[0].order_id, orders[1].order_id]
    book = load_book(engine, market)
    assert [resting.order_id for resting in book.bids] == [orders[1].order_id, orders[0].order_id]
    assert book.next_fill_sequence == 0


def test_orders_stored_in_one_clock_tick_keep_their_arrival_order(engine: Engine) -> None:
    """Revision 0004: orders stored within one millisecond of the database's clock
    (SQLite's resolution) come back in the order they were stored, not by id."""
    market = _market()
    insert_market(engine, market)
    orders = [_signed(market, Keypair(), domain.Side.BUY, 100, LOT) for _ in range(30)]
    for signed in orders:
        store_order(engine, signed)
    with engine.begin() as connection:  # the same tick for all: the worst case
        connection.execute(update(Order).values(created_at=datetime(2030, 1, 1, tzinfo=UTC)))
    listed = list_open_orders(engine, market.market_id)
    assert [stored.order_id for stored in listed] == [signed.order_id for signed in orders]
    book = load_book(engine, market)
    assert [resting.order_id for resting in book.bids] == [s.order_id for s in orders]


def test_orders_stored_as_a_batch_come_back_in_the_batch_order_after_those_before(
    engine: Engine,
) -> None:
    """store_orders writes the batch in one transaction, each order after the ones stored
    earlier and in the batch's own order; a refused order refuses the whole batch."""
    market = _market()
    insert_market(engine, market)
    earlier = _signed(market, Keypair(), domain.Side.BUY, 100, LOT)
    store_order(engine, earlier)
    batch = [_signed(market, Keypair(), domain.Side.BUY, 100, LOT) for _ in range(20)]
    assert store_orders(engine, batch) == 20
    listed = list_open_orders(engine, market.market_id)
    assert [stored.order_id for stored in listed] == [earlier.order_id] + [
        signed.order_id for signed in batch
    ]
    assert all(stored.remaining_atoms == LOT for stored in listed)
    with pytest.raises(IntegrityViolation):
        store_orders(engine, [_signed(market, Keypair(), domain.Side.SELL, 100, LOT), earlier])
    assert _count(engine, Order) == 21
    assert store_orders(engine, []) == 0


def test_on_postgresql_a_batch_insert_is_one_statement_not_one_round_trip_a_row(
    engine: Engine,
) -> None:
    """psycopg sends an executemany one row at a time (storage.engine: no pipeline), one
    round trip each; a batch INSERT goes to the server as one multi-row INSERT instead
    (SQLAlchemy's insertmanyvalues), all its rows stored."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs in process: an executemany there is no round trip")
    market = _market()
    insert_market(engine, market)
    sent: list[tuple[str, int]] = []

    def one(_cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("INSERT INTO orders"):
            sent.append(("execute", 1))

    def many(_cursor: object, statement: str, parameters: list[object], _ctx: object) -> None:
        if statement.startswith("INSERT INTO orders"):
            sent.append(("executemany", len(parameters)))

    event.listen(engine, "do_execute", one)
    event.listen(engine, "do_executemany", many)
    try:
        batch = [_signed(market, Keypair(), domain.Side.BUY, 100, LOT) for _ in range(50)]
        assert store_orders(engine, batch) == 50
    finally:
        event.remove(engine, "do_execute", one)
        event.remove(engine, "do_executemany", many)
    assert sent == [("execute", 1)]  # before: [("executemany", 50)], 50 round trips
    assert _count(engine, Order) == 50


def test_an_order_is_stored_in_one_statement_numbered_one_past_the_highest_arrival(
    engine: Engine,
) -> None:
    """store_order sends one INSERT (the arrival number read inside it, created_at returned
    by it), and numbers on from a batch stored before; the returned created_at is the row's."""
    market = _market()
    insert_market(engine, market)
    assert store_orders(engine, [_signed(market, Keypair(), domain.Side.BUY, 100, LOT)]) == 1
    sent: list[str] = []

    def record(*args: object) -> None:
        sent.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        stored = store_order(engine, _signed(market, Keypair(), domain.Side.SELL, 100, LOT))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert [sql.split()[0].upper() for sql in sent if not sql.upper().startswith("BEGIN")] == [
        "INSERT"
    ]
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(Order.id, Order.arrival, Order.created_at).order_by(Order.arrival)
        ).all()
    assert [row.arrival for row in rows] == [1, 2]
    assert (rows[1].id, rows[1].created_at) == (stored.order_id, stored.created_at)


def test_revision_0004_adds_the_arrival_number_and_its_downgrade_removes_it(
    engine: Engine,
) -> None:
    """Down to 0003 orders have no arrival column; up again it is back."""
    downgrade(engine, "0003")
    assert "arrival" not in _columns(engine, "orders")
    upgrade(engine)
    assert "arrival" in _columns(engine, "orders")


def test_order_statuses_move_only_along_the_allowed_edges(engine: Engine) -> None:
    """unfunded <-> open, open/unfunded -> cancelled/expired; anything else changes nothing."""
    market = _market()
    insert_market(engine, market)
    first, second = (
        _signed(market, Keypair(), domain.Side.SELL, 100, LOT),
        _signed(market, Keypair(), domain.Side.SELL, 100, LOT),
    )
    store_order(engine, first)
    store_order(engine, second)
    assert not mark_order_funded(engine, first.order_id)  # already open
    assert mark_order_unfunded(engine, first.order_id)
    assert not mark_order_unfunded(engine, first.order_id)
    assert mark_order_funded(engine, first.order_id)
    assert mark_order_cancelled(engine, first.order_id, UNCHECKED)
    assert not mark_order_funded(engine, first.order_id)
    assert not mark_order_expired(engine, first.order_id)
    assert mark_order_expired(engine, second.order_id)
    assert not mark_order_cancelled(engine, "11111111111111111111111111111111", UNCHECKED)
    statuses = [get_order(engine, signed.order_id) for signed in (first, second)]
    assert [stored.status for stored in statuses if stored] == ["cancelled", "expired"]


def test_a_status_write_fenced_by_a_lease_taken_over_raises_lease_lost(
    engine: Engine, matched: Matched
) -> None:
    """With a lease, a status write checks its token: after a takeover it changes nothing."""
    contender = LeaseStore(engine, "node-b", clock_offset_s=TAKEOVER_S)
    assert contender.acquire(matched.lease.key, TTL_S) is not None
    with pytest.raises(LeaseLost):
        mark_order_unfunded(engine, matched.bob.order_id, lease=matched.lease)
    stored = get_order(engine, matched.bob.order_id)
    assert stored is not None and stored.status == "open"


# --- the fenced match write --------------------------------------------------------------


def test_the_match_write_stores_fills_remaining_sizes_and_one_pending_settlement_per_fill(
    engine: Engine, matched: Matched
) -> None:
    """One fenced transaction: fills (with token and sequence), remaining sizes, filled at 0,
    and a pending settlement per fill whose id is the fill id."""
    result = matched.result
    assert len(result.fills) == 2
    write = record_match_result(engine, matched.lease, result)
    assert write.recorded and write.fill_ids == tuple(fill.fill_id for fill in result.fills)

    assert list_fills(engine, matched.market.market_id) == list(result.fills)
    assert get_fill(engine, result.fills[0].fill_id) == result.fills[0]
    remaining = {
        signed.order_id: get_order(engine, signed.order_id)
        for signed in (matched.alice, matched.bob, matched.carol)
    }
    assert {oid: (s.remaining_atoms, s.status) for oid, s in remaining.items() if s} == {
        matched.alice.order_id: (0, "filled"),
        matched.bob.order_id: (LOT, "open"),
        matched.carol.order_id: (0, "filled"),
    }
    with read_transaction(engine) as connection:
        tokens = set(connection.execute(select(Fill.fencing_token)).scalars())
    assert tokens == {matched.lease.fencing_token}
    for fill in result.fills:
        settlement = get_settlement(engine, fill.fill_id)
        assert settlement is not None
        assert (settlement.fill_id, settlement.status) == (fill.fill_id, "pending")
    assert next_fill_sequence(engine, matched.market.market_id) == 2
    rebuilt = load_book(engine, matched.market)
    assert rebuilt.levels(domain.Side.SELL) == result.book.levels(domain.Side.SELL)
    assert rebuilt.next_fill_sequence == result.book.next_fill_sequence


def test_a_match_write_under_a_lease_taken_over_writes_nothing(
    engine: Engine, matched: Matched
) -> None:
    """A stale fencing token (another node took the market over) raises LeaseLost; no fill,
    no settlement, no remaining size is written."""
    contender = LeaseStore(engine, "node-b", clock_offset_s=TAKEOVER_S)
    takeover = contender.acquire(matched.lease.key, TTL_S)
    assert takeover is not None and takeover.fencing_token > matched.lease.fencing_token
    with pytest.raises(LeaseLost):
        record_match_result(engine, matched.lease, matched.result)
    assert (_count(engine, Fill), _count(engine, Settlement)) == (0, 0)
    for signed in (matched.alice, matched.bob, matched.carol):
        stored = get_order(engine, signed.order_id)
        assert stored is not None
        assert (stored.remaining_atoms, stored.status) == (signed.order.size_atoms, "open")


def test_replaying_a_match_write_is_a_no_op(engine: Engine, matched: Matched) -> None:
    """The same fill ids written again write nothing (recorded=False), no duplicates."""
    _record(engine, matched)
    replay = record_match_result(engine, matched.lease, matched.result)
    assert not replay.recorded
    assert (_count(engine, Fill), _count(engine, Settlement)) == (2, 2)


def test_replaying_under_a_lost_lease_still_raises_lease_lost(
    engine: Engine, matched: Matched
) -> None:
    """A replay writes nothing but still checks the lease, so a node that lost it hears so."""
    _record(engine, matched)
    assert matched.leases.release(matched.lease)
    with pytest.raises(LeaseLost):
        record_match_result(engine, matched.lease, matched.result)


def test_a_write_with_only_some_fills_recorded_is_refused_naming_fill_id(
    engine: Engine, matched: Matched
) -> None:
    """Fill ids partly recorded are no replay: DuplicateEntry(field="fill_id"), nothing more written."""
    first = matched.result.fills[:1]
    assert record_match(engine, matched.lease, first, {}).recorded
    with pytest.raises(DuplicateEntry) as refused:
        record_match_result(engine, matched.lease, matched.result)
    assert refused.value.field == "fill_id"
    assert (_count(engine, Fill), _count(engine, Settlement)) == (1, 1)


def test_a_match_against_an_order_cancelled_meanwhile_is_rolled_back(
    engine: Engine, matched: Matched
) -> None:
    """If a cancel reached the database first, the write raises StateConflict naming the order
    and writes nothing: the cancel wins."""
    assert mark_order_cancelled(engine, matched.bob.order_id, UNCHECKED)
    with pytest.raises(StateConflict, match=matched.bob.order_id):
        record_match_result(engine, matched.lease, matched.result)
    assert (_count(engine, Fill), _count(engine, Settlement)) == (0, 0)
    alice = get_order(engine, matched.alice.order_id)
    assert alice is not None and alice.remaining_atoms == 3 * LOT


def test_a_match_write_needs_the_lease_of_its_own_market(engine: Engine, matched: Matched) -> None:
    """Fills written under another market's lease are a programming error, refused before any SQL."""
    other = matched.leases.acquire(market_key("OTHER"), TTL_S)
    assert other is not None
    with pytest.raises(ValueError, match="need its lease"):
        record_match_result(engine, other, matched.result)
    assert _count(engine, Fill) == 0


# --- settlements under claims ------------------------------------------------------------


def test_an_attempt_is_written_ahead_under_the_claim(engine: Engine, matched: Matched) -> None:
    """record_attempt stores signature, raw bytes, blockhash and last valid height under the
    claim's token, and the settlement becomes submitted."""
    _record(engine, matched)
    queue, claim = _claim(engine)
    signature = _attempt(queue, claim, height=4_242)
    (attempt,) = list_attempts(engine, str(claim.row_id))
    assert (attempt.signature, attempt.attempt_number, attempt.state) == (signature, 1, "signed")
    assert attempt.raw_transaction == b"\x01signed-transaction-bytes"
    assert (attempt.last_valid_block_height, attempt.claim_token) == (4_242, claim.claim_token)
    settlement = get_settlement(engine, str(claim.row_id))
    assert settlement is not None and settlement.status == "submitted"


def test_an_attempt_under_a_claim_taken_over_writes_nothing(
    engine: Engine, matched: Matched
) -> None:
    """Once another node claimed the settlement, record_attempt raises ClaimLost and stores no attempt."""
    _record(engine, matched)
    queue, claim = _claim(engine)
    _queue_b, claim_b = _claim(engine, "node-b", offset_s=TAKEOVER_S)
    assert claim_b.row_id == claim.row_id and claim_b.claim_token > claim.claim_token
    with pytest.raises(ClaimLost):
        _attempt(queue, claim)
    assert _count(engine, SettlementAttempt) == 0
    settlement = get_settlement(engine, str(claim.row_id))
    assert settlement is not None and settlement.status == "pending"


def test_a_new_attempt_waits_until_every_earlier_one_is_expired(
    engine: Engine, matched: Matched
) -> None:
    """A second attempt is refused while the first is signed or sent, and allowed once it expired."""
    _record(engine, matched)
    queue, claim = _claim(engine)
    first = _attempt(queue, claim)
    with pytest.raises(StateConflict, match="signed"):
        _attempt(queue, claim)
    mark_attempt(queue, claim, first, "sent")
    with pytest.raises(StateConflict, match="sent"):
        _attempt(queue, claim)
    mark_attempt(queue, claim, first, "expired")
    second = _attempt(queue, claim)
    attempts = list_attempts(engine, str(claim.row_id))
    assert [(a.signature, a.attempt_number, a.state) for a in attempts] == [
        (first, 1, "expired"),
        (second, 2, "signed"),
    ]


def test_an_attempt_state_only_moves_forward(engine: Engine, matched: Matched) -> None:
    """An expired attempt cannot be sent or land; an unknown signature is a StateConflict too."""
    _record(engine, matched)
    queue, claim = _claim(engine)
    signature = _attempt(queue, claim)
    mark_attempt(queue, claim, signature, "expired")
    for state in ("sent", "confirmed"):
        with pytest.raises(StateConflict, match="cannot become"):
            mark_attempt(queue, claim, signature, state)
    with pytest.raises(StateConflict):
        mark_attempt(queue, claim, str(Keypair().sign_message(b"other")), "sent")
    assert [a.state for a in list_attempts(engine, str(claim.row_id))] == ["expired"]


def test_confirming_records_the_slot_and_history_and_gives_the_claim_up(
    engine: Engine, matched: Matched
) -> None:
    """confirm_settlement: attempt confirmed, settlement confirmed with its signature, a history
    line with the slot; the row is no longer claimable."""
    _record(engine, matched)
    queue, claim = _claim(engine)
    signature = _attempt(queue, claim)
    confirm_settlement(queue, claim, signature, slot=777)
    settlement = get_settlement(engine, str(claim.row_id))
    assert settlement is not None
    assert (settlement.status, settlement.confirmed_signature) == ("confirmed", signature)
    assert [a.state for a in list_attempts(engine, str(claim.row_id))] == ["confirmed"]
    with read_transaction(engine) as connection:
        history = connection.execute(
            select(
                TransactionHistory.status, TransactionHistory.slot, TransactionHistory.type
            ).where(TransactionHistory.signature == signature)
        ).all()
    assert [tuple(row) for row in history] == [("confirmed", 777, "settlement")]
    later = settlement_queue(engine, "node-c", clock_offset_s=TAKEOVER_S).claim(5, TTL_S)
    assert claim.row_id not in {other.row_id for other in later}


def test_confirm_and_fail_under_a_claim_taken_over_change_nothing(
    engine: Engine, matched: Matched
) -> None:
    """After a takeover, confirm_settlement and fail_settlement raise ClaimLost and leave the
    settlement, its attempt and the history as they were."""
    _record(engine, matched)
    queue, claim = _claim(engine)
    signature = _attempt(queue, claim)
    _claim(engine, "node-b", offset_s=TAKEOVER_S)
    with pytest.raises(ClaimLost):
        confirm_settlement(queue, claim, signature, slot=1)
    with pytest.raises(ClaimLost):
        fail_settlement(queue, claim, "gave up", signature=signature)
    with pytest.raises(ClaimLost):
        mark_attempt(queue, claim, signature, "sent")
    settlement = get_settlement(engine, str(claim.row_id))
    assert settlement is not None and settlement.status == "submitted"
    assert [a.state for a in list_attempts(engine, str(claim.row_id))] == ["signed"]
    assert _count(engine, TransactionHistory) == 0


def test_failing_records_the_reason_and_is_refused_while_an_attempt_may_land(
    engine: Engine, matched: Matched
) -> None:
    """fail_settlement refuses while another attempt is still sent; with the landed-with-error
    signature it records the reason, the attempt failed and a failed history line."""
    _record(engine, matched)
    queue, claim = _claim(engine)
    first = _attempt(queue, claim)
    mark_attempt(queue, claim, first, "sent")
    with pytest.raises(StateConflict, match="might still land"):
        fail_settlement(queue, claim, "delegate revoked")
    fail_settlement(queue, claim, "delegate revoked", signature=first, slot=12)
    settlement = get_settlement(engine, str(claim.row_id))
    assert settlement is not None
    assert (settlement.status, settlement.last_error) == ("failed", "delegate revoked")
    assert [a.state for a in list_attempts(engine, str(claim.row_id))] == ["failed"]
    with read_transaction(engine) as connection:
        row = connection.execute(
            select(TransactionHistory.status, TransactionHistory.error).where(
                TransactionHistory.signature == first
            )
        ).one()
    assert tuple(row) == ("failed", "delegate revoked")


def test_recovery_lists_settlements_with_unresolved_attempts_and_every_attempt(
    engine: Engine, matched: Matched
) -> None:
    """settlements_to_recover returns each unfinished settlement with a signed or sent attempt,
    with all its attempts (expired ones too); settled and attempt-less ones are left out."""
    _record(engine, matched)
    queue = settlement_queue(engine, "node-a")
    first_claim, second_claim = queue.claim(2, TTL_S)
    expired = _attempt(queue, first_claim)
    mark_attempt(queue, first_claim, expired, "expired")
    live = _attempt(queue, first_claim)
    assert settlements_to_recover(engine, market_ids=["OTHER"]) == []
    (case,) = settlements_to_recover(engine)
    assert case.settlement.settlement_id == first_claim.row_id
    assert [(a.signature, a.state) for a in case.attempts] == [
        (expired, "expired"),
        (live, "signed"),
    ]
    landed = _attempt(queue, second_claim)
    confirm_settlement(queue, second_claim, landed, slot=5)
    assert [c.settlement.settlement_id for c in settlements_to_recover(engine)] == [
        first_claim.row_id
    ]


# --- reconciliation ----------------------------------------------------------------------


def test_reconciliation_sums_what_confirmed_fills_moved_per_token_account(
    engine: Engine, matched: Matched
) -> None:
    """expected_balance_changes counts confirmed settlements only: base from seller to buyer,
    quote from buyer to seller, exactly; each mint's changes sum to zero."""
    _record(engine, matched)
    assert expected_balance_changes(engine) == {}
    alice_fill = matched.result.fills[0]
    queue = settlement_queue(engine, "node-a")
    claims = {claim.row_id: claim for claim in queue.claim(2, TTL_S)}
    claim = claims[alice_fill.fill_id]
    confirm_settlement(queue, claim, _attempt(queue, claim), slot=9)

    alice, carol = matched.alice.order, matched.carol.order
    expected = {
        str(alice.pay_account): -3 * LOT,
        str(carol.receive_account): 3 * LOT,
        str(carol.pay_account): -300,
        str(alice.receive_account): 300,
    }
    assert expected_balance_changes(engine) == expected
    assert expected_balance_changes(engine, market_id=matched.market.market_id) == expected
    assert expected_balance_changes(engine, market_id="OTHER") == {}
    everything = expected_balance_changes(
        engine, settlement_statuses=("pending", "submitted", "confirmed")
    )
    assert everything[str(carol.pay_account)] == -(300 + 110)
    assert sum(everything.values()) == 0


# --- migration 0003 ------------------------------------------------------------------------


_PIPELINE_COLUMNS = {
    "markets": {"lot_size_atoms", "tick_size_atoms", "fee_payer"},
    "orders": {"client_order_id", "expiry_s"},
    "fills": {"sequence"},
}


def _columns(engine: Engine, table: str) -> set[str]:
    with engine.connect() as connection:
        return {column["name"] for column in inspect(connection).get_columns(table)}


def test_revision_0003_adds_the_pipeline_columns_and_its_downgrade_removes_them(
    engine: Engine,
) -> None:
    """Down to 0002 the new columns and unique indexes are gone; up again they are back."""
    assert current_revision(engine) == head_revision() == "0010"
    downgrade(engine, "0003")
    for table, columns in _PIPELINE_COLUMNS.items():
        assert columns <= _columns(engine, table)
    downgrade(engine, "0002")
    for table, columns in _PIPELINE_COLUMNS.items():
        assert not columns & _columns(engine, table)
    with engine.connect() as connection:
        order_indexes = {index["name"] for index in inspect(connection).get_indexes("orders")}
    assert "ix_orders_maker_client_order_id" not in order_indexes
    upgrade(engine)
    assert current_revision(engine) == "0010"
    for table, columns in _PIPELINE_COLUMNS.items():
        assert columns <= _columns(engine, table)
