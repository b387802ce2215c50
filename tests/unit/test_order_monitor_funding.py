"""OrderMonitor's pure parts: splitting keys into requests, and judging the funding of
several orders that share a pay account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actors.order_monitor import MAX_ACCOUNTS_PER_REQUEST, batches, judge_funding
from market import InsufficientFunds, InvalidTokenAccount, Side, TokenAccount, decode_token_account
from storage import StoredOrder
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
