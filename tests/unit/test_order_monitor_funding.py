"""OrderMonitor's pure parts: splitting keys into requests, judging the funding of
several orders that share a pay account, and knowing when a judgement need not be
made again."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.order_monitor import (
    MAX_ACCOUNTS_PER_REQUEST,
    _Covered,
    _MarketView,
    batches,
    judge_funding,
    still_covered,
)
from market import InsufficientFunds, InvalidTokenAccount, Side, TokenAccount, decode_token_account
from storage import Lease, StoredOrder
from tests.unit.market.factories import (
    AUTHORITY,
    BASE_MINT,
    LOT_ATOMS,
    MAKERS,
    make_market,
    make_order,
    signed,
    token_account_data,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _stored(
    nonce: int, lots: int, arrived_s: int, remaining_lots: int | None = None
) -> StoredOrder:
    order = make_order(Side.SELL, size_atoms=lots * LOT_ATOMS, nonce=nonce, client_order_id=nonce)
    remaining = lots if remaining_lots is None else remaining_lots
    return StoredOrder(
        signed(order), remaining * LOT_ATOMS, "open", T0 + timedelta(seconds=arrived_s)
    )


def _account(amount_lots: int, delegated_lots: int) -> TokenAccount:
    order = make_order(Side.SELL)
    data = token_account_data(
        BASE_MINT,
        MAKERS[0].pubkey(),
        amount_lots * LOT_ATOMS,
        AUTHORITY.pubkey(),
        delegated_amount=delegated_lots * LOT_ATOMS,
    )
    return decode_token_account(order.pay_account, data)


def test_keys_are_split_into_requests_of_at_most_100_in_their_order() -> None:
    """batches() keeps every key once, in order, in chunks of at most 100; none for none."""
    keys = [f"key-{index}" for index in range(250)]
    chunks = batches(keys)
    assert [len(chunk) for chunk in chunks] == [100, 100, 50]
    assert [key for chunk in chunks for key in chunk] == keys
    assert batches(keys[:100]) == [tuple(keys[:100])]
    assert batches([]) == []
    assert MAX_ACCOUNTS_PER_REQUEST == 100


def test_orders_on_one_account_are_funded_in_arrival_order_until_it_runs_short() -> None:
    """With 5 lots on the account (10 delegated), the earliest order (3 lots) is funded, the next (3 lots)
    is not (3 + 3 > 5), and a later 2-lot order is: only funded orders' debts count."""
    early, middle, late = _stored(1, 3, 0), _stored(2, 3, 1), _stored(3, 2, 2)
    account = _account(5, 10)
    verdicts = judge_funding(make_market(), [late, middle, early], {str(account.address): account})
    assert verdicts[early.order_id] is None
    assert isinstance(verdicts[middle.order_id], InsufficientFunds)
    assert verdicts[late.order_id] is None


def test_orders_stored_in_one_clock_tick_are_funded_in_the_order_given_not_by_id() -> None:
    """Two 3-lot orders with the same created_at on a 5-lot account: the first given (the
    earlier arrival) is funded and the second is not, whichever id sorts first."""
    first, second = _stored(1, 3, 0), _stored(2, 3, 0)
    account = _account(5, 10)
    for earlier, later in ((first, second), (second, first)):
        verdicts = judge_funding(make_market(), [earlier, later], {str(account.address): account})
        assert verdicts[earlier.order_id] is None
        assert isinstance(verdicts[later.order_id], InsufficientFunds)


def test_what_is_left_of_an_order_is_what_it_must_cover() -> None:
    """A 10-lot order with 2 lots left is funded by an account holding 2 lots."""
    partly_filled = _stored(1, 10, 0, remaining_lots=2)
    account = _account(2, 2)
    verdicts = judge_funding(make_market(), [partly_filled], {str(account.address): account})
    assert verdicts == {partly_filled.order_id: None}


def test_an_unreadable_account_is_every_order_on_its_problem_and_others_are_not_judged() -> None:
    """Orders whose pay account could not be read get that problem; orders whose account
    was not in the answer get no verdict at all."""
    order = _stored(1, 3, 0)
    missing = InvalidTokenAccount("pay_account", "does not exist on chain")
    verdicts = judge_funding(make_market(), [order], {str(order.order.pay_account): missing})
    assert verdicts == {order.order_id: missing}
    assert judge_funding(make_market(), [order], {}) == {}


def _covered(orders: list[StoredOrder], account: TokenAccount) -> _Covered | None:
    """What the monitor remembers after judging ``orders`` on ``account``: None unless
    every one of them was found funded."""
    verdicts = judge_funding(make_market(), orders, {str(account.address): account})
    if any(verdicts[order.order_id] is not None for order in orders):
        return None
    return _Covered(account, {order.order_id: order.remaining_atoms for order in orders})


@settings(max_examples=300, deadline=None)
@given(
    lots=st.lists(st.integers(1, 4), min_size=1, max_size=6),
    first_left=st.lists(st.integers(1, 4), min_size=6, max_size=6),
    later_left=st.lists(st.integers(0, 4), min_size=6, max_size=6),
    held=st.integers(0, 20),
    delegated=st.integers(0, 20),
    later_held=st.integers(0, 20),
    later_delegated=st.integers(0, 20),
    stored_later=st.integers(0, 4),
    shuffle=st.randoms(use_true_random=False),
)
def test_orders_still_covered_are_what_judging_them_again_finds_all_funded(
    lots: list[int],
    first_left: list[int],
    later_left: list[int],
    held: int,
    delegated: int,
    later_held: int,
    later_delegated: int,
    stored_later: int,
    shuffle: Random,
) -> None:
    """still_covered() saying yes means judging the orders again finds every one funded:
    whichever orders left since (0 lots left: filled), whatever is left of each (less, the
    same or more: filled partly, or a fill put back), in whatever order they come, with an
    order stored later or not, against the account as it was or as it reads now. And where
    the account reads the same and the orders only left or shrank, it does say yes (the
    judging it is there to save)."""
    first = [
        _stored(nonce, size, nonce, remaining_lots=min(first_left[k], size))
        for k, (nonce, size) in enumerate(enumerate(lots, start=1))
    ]
    account = _account(held, delegated)
    covered = _covered(first, account)
    now = [
        dataclasses.replace(order, remaining_atoms=min(later_left[k], lots[k]) * LOT_ATOMS)
        for k, order in enumerate(first)
        if later_left[k]
    ]
    if stored_later:
        now.append(_stored(99, stored_later, 99))
    shuffle.shuffle(now)
    pairs = [(order.order_id, order) for order in now]
    for reads_now in (account, _account(later_held, later_delegated)):
        if still_covered(covered, reads_now, pairs):
            verdicts = judge_funding(make_market(), now, {str(reads_now.address): reads_now})
            assert all(verdict is None for verdict in verdicts.values()), verdicts
    before = {order.order_id: order.remaining_atoms for order in first}
    shrank_only = not stored_later and all(
        order.remaining_atoms <= before[order.order_id] for order in now
    )
    if covered is not None and shrank_only:
        assert still_covered(covered, account, pairs)


def test_an_order_grown_added_set_aside_or_a_changed_account_is_judged_again() -> None:
    """still_covered() says no, so the orders are judged, when an order on the account
    has more left than it had (a failed settlement put a fill back), an order not judged
    then is on it, one of them reads unfunded in the database, or the account reads
    differently (one atom more), and when nothing was covered."""
    orders = [_stored(1, 3, 0, remaining_lots=2), _stored(2, 2, 1)]
    account = _account(10, 10)
    covered = _covered(orders, account)
    assert covered is not None
    pairs = [(order.order_id, order) for order in orders]
    assert still_covered(covered, account, pairs)

    grown = dataclasses.replace(orders[0], remaining_atoms=3 * LOT_ATOMS)
    assert not still_covered(covered, account, [(grown.order_id, grown), pairs[1]])
    added = _stored(3, 1, 2)
    assert not still_covered(covered, account, [*pairs, (added.order_id, added)])
    set_aside = dataclasses.replace(orders[1], status="unfunded")
    assert not still_covered(covered, account, [pairs[0], (set_aside.order_id, set_aside)])
    one_atom_more = dataclasses.replace(account, amount=account.amount + 1)
    assert not still_covered(covered, one_atom_more, pairs)
    assert not still_covered(None, account, pairs)


def test_an_account_left_without_orders_is_forgotten_with_its_verdicts() -> None:
    """When the last order on a covered account leaves play, the account's record goes
    with it: nothing is kept for accounts no order uses (a node running for weeks sees
    many), and an order later on that account is judged afresh."""
    orders = [_stored(1, 3, 0), _stored(2, 2, 1)]
    account = _account(10, 10)
    lease = Lease("market:SOL-USDC", "node", 1, T0, T0 + timedelta(hours=1))
    view = _MarketView(lease, make_market())
    for order in orders:
        view.orders[order.order_id] = order
        view.track(order.order_id, order)
    covered = _covered(orders, account)
    assert covered is not None
    view.covered[str(account.address)] = covered

    view.untrack(orders[0].order_id)
    assert str(account.address) in view.covered
    view.untrack(orders[1].order_id)

    assert view.covered == {} and view.orders_on == {}
