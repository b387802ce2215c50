"""The five chaos invariants on hand-made facts: each passes on good data and FAILS on
the bad data it exists to catch (a checker that cannot fail is a defect), and on no
data at all (an empty run proves nothing)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from solders.pubkey import Pubkey

from crank_node.chaos.checks import (
    OrderFilling,
    check_balances,
    check_no_overfill,
    check_settled_once,
)
from crank_node.chaos.lease_checks import (
    AttemptFence,
    FencingFacts,
    FillFence,
    NodeDown,
    check_fencing,
    check_no_dead_holders,
)
from crank_node.chaos.marker_checks import FillMarker, MarkerAccounting, account_for_markers
from crank_node.chaos.monitor import LeaseSpan
from localnet.audit import ChainSettlements
from market import Fill, Side

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- 1: every fill settled exactly once ----------------------------------------------------


def test_fills_each_settled_once_on_chain_pass() -> None:
    result = check_settled_once(
        {"f1": "confirmed", "f2": "confirmed"}, ChainSettlements(Counter({"f1": 1, "f2": 1}))
    )
    assert result.ok and result.number == 1, result


def test_a_fill_settled_twice_fails_naming_it() -> None:
    result = check_settled_once(
        {"f1": "confirmed", "f2": "confirmed"}, ChainSettlements(Counter({"f1": 2, "f2": 1}))
    )
    assert not result.ok
    assert result.details == ("fill f1: 2 transactions on chain (status confirmed)",)


def test_a_fill_never_settled_or_settled_but_not_recorded_fails() -> None:
    result = check_settled_once(
        {"f1": "pending", "f2": "submitted"}, ChainSettlements(Counter({"f2": 1}))
    )
    assert not result.ok
    assert result.details == (
        "fill f1: 0 transactions on chain (status pending)",
        "fill f2: settled on chain, but submitted in the database",
    )


def test_a_settlement_on_chain_without_a_fill_fails() -> None:
    result = check_settled_once({"f1": "confirmed"}, ChainSettlements(Counter({"f1": 1, "x": 1})))
    assert not result.ok
    assert result.details == ("settlement on chain for fill x, not in the database",)


def test_no_fills_at_all_fails() -> None:
    assert not check_settled_once({}, ChainSettlements()).ok


# -- 2: no order filled beyond its size ----------------------------------------------------


def test_orders_filled_within_their_size_pass() -> None:
    orders = [OrderFilling("a", 100, 40, 60), OrderFilling("b", 100, 100, 0)]
    assert check_no_overfill(orders).ok


def test_an_overfilled_order_fails_naming_it() -> None:
    result = check_no_overfill([OrderFilling("a", 100, 0, 130), OrderFilling("b", 10, 10, 0)])
    assert not result.ok
    assert result.details == ("order a: filled 130 of 100",)


def test_an_order_whose_remaining_size_disagrees_with_its_fills_fails() -> None:
    result = check_no_overfill([OrderFilling("a", 100, 70, 60)])
    assert not result.ok
    assert result.details == ("order a: 70 left, but its fills leave 40 of 100",)


def test_no_orders_at_all_fails() -> None:
    assert not check_no_overfill([]).ok


# -- 3: balances = start + fills -----------------------------------------------------------

SELLER_BASE, SELLER_QUOTE, BUYER_BASE, BUYER_QUOTE = (Pubkey.new_unique() for _ in range(4))


def _fill(base_atoms: int, quote_atoms: int) -> Fill:
    return Fill(
        fill_id="f1",
        market_id="m",
        sequence=0,
        maker_order_id="a",
        taker_order_id="b",
        taker_side=Side.BUY,
        price_atoms=quote_atoms,
        base_atoms=base_atoms,
        quote_atoms=quote_atoms,
        buyer=Pubkey.new_unique(),
        seller=Pubkey.new_unique(),
        buyer_pay_account=BUYER_QUOTE,
        buyer_receive_account=BUYER_BASE,
        seller_pay_account=SELLER_BASE,
        seller_receive_account=SELLER_QUOTE,
    )


BEFORE = {str(a): 1_000 for a in (SELLER_BASE, SELLER_QUOTE, BUYER_BASE, BUYER_QUOTE)}


def test_balances_moved_exactly_by_the_fills_pass() -> None:
    after = {
        str(SELLER_BASE): 990,
        str(BUYER_BASE): 1_010,
        str(BUYER_QUOTE): 950,
        str(SELLER_QUOTE): 1_050,
    }
    assert check_balances(BEFORE, after, [_fill(10, 50)]).ok


def test_a_fill_that_moved_nothing_on_chain_fails_naming_the_accounts() -> None:
    result = check_balances(BEFORE, dict(BEFORE), [_fill(10, 50)])
    assert not result.ok
    assert len(result.details) == 4
    assert f"account {SELLER_BASE}: expected 990, on chain 1000" in result.details


def test_tokens_moved_twice_fail() -> None:
    after = {
        str(SELLER_BASE): 980,
        str(BUYER_BASE): 1_020,
        str(BUYER_QUOTE): 900,
        str(SELLER_QUOTE): 1_100,
    }
    assert not check_balances(BEFORE, after, [_fill(10, 50)]).ok


# -- 4: fencing tokens only increase -------------------------------------------------------


def _span(
    key: str, holder: str, token: int, first_s: float, last_s: float, live: bool = True
) -> LeaseSpan:
    return LeaseSpan(key, holder, token, _at(first_s), live, first_s, last_s)


LEASES = [
    _span("market:m", "n1", 1, 0.0, 5.0),
    _span("market:m", "n1", 1, 5.1, 6.0, live=False),
    _span("market:m", "n2", 2, 6.1, 20.0),
]
GOOD_FILLS = [
    FillFence("f0", "m", 0, 1, _at(1.0)),
    FillFence("f1", "m", 1, 1, _at(4.0)),
    FillFence("f2", "m", 2, 2, _at(7.0)),
]
GOOD_ATTEMPTS = [
    AttemptFence("s1", 1, 1, "expired"),
    AttemptFence("s1", 2, 3, "confirmed"),
    AttemptFence("s2", 1, 1, "confirmed"),
]


def _facts(
    fills: list[FillFence] = GOOD_FILLS,
    last_tokens: dict[str, int] | None = None,
    attempts: list[AttemptFence] = GOOD_ATTEMPTS,
    claims: dict[str, int] | None = None,
) -> FencingFacts:
    return FencingFacts(
        fills,
        {"market:m": 2} if last_tokens is None else last_tokens,
        attempts,
        {"s1": 3, "s2": 1} if claims is None else claims,
    )


def test_tokens_that_only_increase_pass() -> None:
    assert check_fencing(_facts(), LEASES).ok


def test_a_fill_under_an_older_token_after_a_newer_one_fails() -> None:
    """A write with an old token accepted after a newer one shows as a decrease."""
    fills = [*GOOD_FILLS, FillFence("f3", "m", 3, 1, _at(6.5))]
    result = check_fencing(_facts(fills), LEASES)
    assert not result.ok
    assert "m: fill #3 under token 1 after fill #2 under token 2" in result.details


def test_a_fill_under_a_token_never_issued_fails() -> None:
    result = check_fencing(_facts(last_tokens={"market:m": 1}), LEASES)
    assert not result.ok
    assert result.details == ("m: fills under token 2, only 1 ever issued",)


def test_a_fill_written_after_a_later_token_was_granted_fails() -> None:
    """The new holder had not written yet, so no decrease shows; the grant time does."""
    fills = [FillFence("f0", "m", 0, 1, _at(1.0)), FillFence("f1", "m", 1, 1, _at(6.5))]
    result = check_fencing(_facts(fills), LEASES)
    assert not result.ok
    assert "after a later token was granted" in result.details[0]
    assert check_fencing(_facts(fills), LEASES, clock_tolerance_s=1.0).ok


def test_attempts_under_a_decreasing_claim_token_or_confirmed_twice_fail() -> None:
    attempts = [
        AttemptFence("s1", 1, 3, "expired"),
        AttemptFence("s1", 2, 2, "confirmed"),
        AttemptFence("s2", 1, 1, "confirmed"),
        AttemptFence("s2", 2, 1, "confirmed"),
    ]
    result = check_fencing(_facts(attempts=attempts), LEASES)
    assert not result.ok
    assert result.details == (
        "settlement s1: attempt 2 under claim 2 after attempt 1 under claim 3",
        "settlement s2: attempts [1, 2] all confirmed",
    )


def test_an_attempt_under_a_claim_the_settlement_never_had_fails() -> None:
    result = check_fencing(_facts(claims={"s1": 2, "s2": 1}), LEASES)
    assert not result.ok
    assert result.details == (
        "settlement s1: an attempt under claim 3, the settlement's claim is only 2",
    )


def test_a_lease_token_seen_going_back_or_held_by_two_nodes_fails() -> None:
    back = [*LEASES, _span("market:m", "n1", 1, 21.0, 22.0)]
    result = check_fencing(_facts(), back)
    assert not result.ok
    assert "market:m: token 1 (n1) seen at +21.0s after token 2 (n2)" in result.details
    shared = [*LEASES, _span("market:m", "n3", 2, 21.0, 22.0)]
    result = check_fencing(_facts(), shared)
    assert not result.ok
    assert result.details == ("market:m: token 2 held by n2 and n3",)


def test_no_fills_or_no_leases_seen_fails() -> None:
    assert not check_fencing(_facts(fills=[]), LEASES).ok
    assert not check_fencing(_facts(), []).ok


# -- 5: no lease held by a dead node past its TTL -----------------------------------------

TTL_S, SLACK_S = 3.0, 0.5


def test_leases_of_a_dead_node_expiring_within_the_ttl_pass() -> None:
    leases = [
        _span("market:m", "n1", 1, 0.0, 12.0),  # killed at 10: live until 12 < 13.5
        _span("market:m", "n1", 1, 12.1, 14.0, live=False),
        _span("market:m", "n1", 2, 20.5, 30.0),  # restarted at 20: a new lease
    ]
    down = [NodeDown("n1", 10.0, 20.0, "killed")]
    assert check_no_dead_holders(leases, down, ttl_s=TTL_S, slack_s=SLACK_S).ok


def test_a_lease_live_past_the_ttl_of_a_dead_node_fails() -> None:
    leases = [_span("market:m", "n1", 1, 0.0, 14.0)]
    down = [NodeDown("n1", 10.0, 20.0, "killed")]
    result = check_no_dead_holders(leases, down, ttl_s=TTL_S, slack_s=SLACK_S)
    assert not result.ok
    assert result.details == (
        "market:m: live under token 1 of n1 at +13.5s, 3.5s after it was killed (TTL 3s)",
    )


def test_a_lease_live_a_ttl_after_every_node_stopped_fails() -> None:
    leases = [_span("market:m", "n2", 4, 30.0, 40.0)]
    down = [NodeDown("n2", 35.0, None, "stopped at the end")]
    assert not check_no_dead_holders(leases, down, ttl_s=TTL_S, slack_s=SLACK_S).ok


def test_no_leases_seen_fails() -> None:
    assert not check_no_dead_holders([], [], ttl_s=TTL_S, slack_s=SLACK_S).ok


# -- 1, from current state: every fill against its settlement marker -----------------------


def _markers(*fills: FillMarker, existing: tuple[str, ...] = ()) -> MarkerAccounting:
    return account_for_markers(list(fills), set(existing))


def test_confirmed_fills_with_their_markers_on_chain_or_reclaimed_are_all_accounted_for() -> None:
    """A marker on chain, or one reclaimed (its account closed by design), accounts for a
    confirmed fill; fills whose attempts carry no marker (before markers) are counted,
    not checked, and the invariant holds with the counts in its summary."""
    accounted = _markers(
        FillMarker("f1", "confirmed", frozenset({"M1"})),
        FillMarker("f2", "confirmed", frozenset({"M2"}), reclaimed=True),
        FillMarker("f3", "confirmed", frozenset()),
        existing=("M1",),
    )
    assert accounted == MarkerAccounting(2, 1, 1, 1, ())
    result = check_settled_once(
        {"f1": "confirmed", "f2": "confirmed", "f3": "confirmed"},
        ChainSettlements(Counter({"f1": 1, "f2": 1, "f3": 1})),
        accounted,
    )
    assert result.ok, result
    assert "markers: 1 on chain, 1 reclaimed, 1 fills without one" in result.summary
    assert "every marker accounted for" in result.summary
    assert result.to_json()["markers"]["all_accounted_for"] is True


def test_a_confirmed_fill_whose_marker_is_gone_fails_even_when_the_memos_agree() -> None:
    """History may say once, but the marker (current state) is missing and not reclaimed:
    invariant 1 fails naming the fill and the marker."""
    accounted = _markers(FillMarker("f1", "confirmed", frozenset({"M1"})))
    result = check_settled_once(
        {"f1": "confirmed"}, ChainSettlements(Counter({"f1": 1})), accounted
    )
    assert not result.ok
    assert result.details == (
        "fill f1: confirmed, but its marker M1 is not on chain and was not reclaimed",
    )
    assert "1 marker problems" in result.summary


def test_a_marker_for_a_fill_not_settled_in_the_database_fails() -> None:
    """The chain settled it (its marker exists) while the database says pending: found
    from current state even when the node that saw the landing pruned its history."""
    accounted = _markers(FillMarker("f1", "pending", frozenset({"M1"})), existing=("M1",))
    assert accounted.problems == (
        "fill f1: marker M1 on chain, but the settlement is pending in the database",
    )
    result = check_settled_once({"f1": "pending"}, ChainSettlements(), accounted)
    assert not result.ok


def test_attempts_of_one_fill_with_different_marker_addresses_fail() -> None:
    """One fill, one marker: two addresses mean a second settlement could land."""
    accounted = _markers(FillMarker("f1", "confirmed", frozenset({"M1", "M2"})), existing=("M1",))
    assert accounted.problems == ("fill f1: its attempts carry 2 marker addresses",)


def test_a_fill_settled_twice_fails_with_markers_too() -> None:
    """Markers do not excuse a second successful transaction: at most one per fill."""
    accounted = _markers(FillMarker("f1", "confirmed", frozenset({"M1"})), existing=("M1",))
    result = check_settled_once(
        {"f1": "confirmed"}, ChainSettlements(Counter({"f1": 2})), accounted
    )
    assert not result.ok
    assert result.details == ("fill f1: 2 transactions on chain (status confirmed)",)
