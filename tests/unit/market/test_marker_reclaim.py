"""The reclaim rules of settlement markers (market.marker_reclaim), without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.hash import Hash
from solders.keypair import Keypair
from solders.transaction import VersionedTransaction

from market.marker import MARKER_RENT_LAMPORTS, RECLAIM_MARGIN_BLOCKS, marker_for, reclaimable
from market.marker_reclaim import (
    PACKET_DATA_SIZE,
    Close,
    FinalizedView,
    Gone,
    MarkerFacts,
    Reclaimed,
    Wait,
    build_reclaim_transactions,
    judge_marker,
    parse_epoch_info,
    parse_marker_accounts,
)

heights = st.integers(min_value=0, max_value=10**6)
attempt_heights = st.lists(heights, min_size=0, max_size=6)


def _could_still_land(last_valid_block_heights: list[int], finalized_height: int) -> bool:
    """The model: an attempt valid until L may still land (or be replayed from a status
    cache) in any block whose height is at most L + the 300-block window; blocks up to
    the finalized height are final, later ones are still to come."""
    return any(
        finalized_height <= height + RECLAIM_MARGIN_BLOCKS for height in last_valid_block_heights
    )


@given(attempt_heights, st.one_of(st.none(), heights))
def test_reclaimable_is_never_true_while_any_attempt_could_still_land(
    last_valid_block_heights: list[int], finalized_height: int | None
) -> None:
    """Over any attempts' last valid block heights and any finalized height (or none
    known), reclaimable holds only when no attempt could still land or be replayed,
    and with no attempt known it never holds."""
    verdict = reclaimable(last_valid_block_heights, finalized_height)
    if finalized_height is None or not last_valid_block_heights:
        assert verdict is False
    else:
        assert verdict == (not _could_still_land(last_valid_block_heights, finalized_height))


@given(attempt_heights, heights, heights)
def test_a_later_attempt_never_makes_a_marker_reclaimable_sooner(
    last_valid_block_heights: list[int], later_attempt: int, finalized_height: int
) -> None:
    """The third-attempt case: adding an attempt (valid longer, or not) to a settlement
    never turns "keep the marker" into "close it"."""
    with_more = [*last_valid_block_heights, later_attempt]
    if not reclaimable(last_valid_block_heights, finalized_height):
        assert not reclaimable(with_more, finalized_height) or not last_valid_block_heights


@given(
    attempt_heights,
    heights,
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.one_of(st.none(), st.integers(min_value=1, max_value=10**9)),
    st.sampled_from(["open", "reclaiming"]),
    st.one_of(st.none(), heights),
)
def test_a_marker_is_only_ever_closed_or_counted_gone_from_one_view_past_the_margin(
    last_valid_block_heights: list[int],
    finalized_height: int,
    view_slot: int,
    accounts_slot: int,
    lamports: int | None,
    state: str,
    reclaim_height: int | None,
) -> None:
    """Whatever the chain says, judge_marker acts (Close, Reclaimed, Gone) only when the
    accounts answer is no older than the finalized view and every attempt is past the
    margin at that view; otherwise it waits."""
    facts = MarkerFacts(state, tuple(last_valid_block_heights), reclaim_height)
    view = FinalizedView(view_slot, finalized_height)
    verdict = judge_marker(facts, view, accounts_slot, lamports)
    if not isinstance(verdict, Wait):
        assert accounts_slot >= view_slot
        assert not _could_still_land(last_valid_block_heights, finalized_height)
        assert last_valid_block_heights


def test_a_reclaim_in_flight_is_waited_for_and_replaced_once_expired() -> None:
    """A ``reclaiming`` marker still there waits while its reclaim can land, and is
    closed again (a new transaction) once the finalized height is past that reclaim's
    last valid block height; gone, it is reclaimed; an open marker gone is Gone."""
    past = 1_000 + RECLAIM_MARGIN_BLOCKS + 1
    facts = MarkerFacts("reclaiming", (1_000,), past + 150)
    assert isinstance(judge_marker(facts, FinalizedView(10, past), 10, 890_880), Wait)
    assert judge_marker(facts, FinalizedView(10, past + 151), 10, 890_880) == Close(890_880)
    assert judge_marker(facts, FinalizedView(10, past), 12, None) == Reclaimed()
    assert (
        judge_marker(MarkerFacts("open", (1_000,), None), FinalizedView(10, past), 10, None)
        == Gone()
    )
    assert isinstance(judge_marker(facts, FinalizedView(10, past), 9, None), Wait)


def test_reclaims_are_packed_under_the_packet_limit_each_marker_once() -> None:
    """Many markers are closed by as few transactions as fit in 1,232 bytes each, every
    marker exactly once, lamports back to the fee payer, signed by both keys."""
    fee_payer, authority = Keypair(), Keypair()
    closes = [
        (f"fill-{n}", str(marker_for(authority, f"fill-{n}").address), MARKER_RENT_LAMPORTS)
        for n in range(40)
    ]
    built = build_reclaim_transactions(
        closes, fee_payer=fee_payer, settlement_authority=authority, recent_blockhash=Hash.default()
    )
    assert all(len(t.raw_bytes) <= PACKET_DATA_SIZE for t in built)
    assert [fill for t in built for fill, _ in t.lamports_by_fill] == [c[0] for c in closes]
    per_transaction = len(built[0].lamports_by_fill)
    assert per_transaction >= 6 and len(built) == -(-40 // per_transaction)
    transaction = VersionedTransaction.from_bytes(built[0].raw_bytes)
    assert transaction.verify_with_results() == [True, True]
    assert transaction.message.account_keys[0] == fee_payer.pubkey()


def test_a_marker_address_the_authority_does_not_derive_is_refused() -> None:
    """A row whose address is not the marker this authority derives for its fill (a wrong
    key, a wrong row) makes nothing: the error names the fill."""
    authority = Keypair()
    wrong = str(marker_for(Keypair(), "fill-1").address)
    with pytest.raises(ValueError, match="marker of fill fill-1"):
        build_reclaim_transactions(
            [("fill-1", wrong, 1)],
            fee_payer=Keypair(),
            settlement_authority=authority,
            recent_blockhash=Hash.default(),
        )


def test_answers_are_parsed_with_their_context_slot_and_bad_ones_named() -> None:
    """getEpochInfo gives slot and height together; getMultipleAccounts gives its context
    slot and lamports (absent: None); malformed answers raise naming the field."""
    assert parse_epoch_info({"absoluteSlot": 9, "blockHeight": 8}) == FinalizedView(9, 8)
    with pytest.raises(ValueError, match="blockHeight"):
        parse_epoch_info({"absoluteSlot": 9})
    answer = {"context": {"slot": 7}, "value": [{"lamports": 5}, None]}
    assert parse_marker_accounts(["a", "b"], answer) == (7, {"a": 5, "b": None})
    with pytest.raises(ValueError, match=r"context\.slot"):
        parse_marker_accounts(["a"], {"value": [None]})
    with pytest.raises(ValueError, match="must list 2"):
        parse_marker_accounts(["a", "b"], {"context": {"slot": 1}, "value": [None]})
