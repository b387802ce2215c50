"""Funding checks: the pay account is the order's, of the right mint and owner, not
frozen, delegated to the market's authority, and covers what the order still owes."""

from __future__ import annotations

import pytest
from solders.pubkey import Pubkey

from market import (
    AccountFrozen,
    InsufficientDelegation,
    InsufficientFunds,
    MarketError,
    Order,
    Side,
    TokenAccount,
    WrongAccount,
    WrongAccountMint,
    WrongAccountOwner,
    WrongDelegate,
    check_funding,
    decode_token_account,
    funding_problem,
    owed_atoms,
)

from .factories import (
    AUTHORITY,
    BASE_MINT,
    LOT_ATOMS,
    MAKERS,
    QUOTE_MINT,
    make_market,
    make_order,
    token_account_data,
)

MARKET = make_market()
BUY = make_order(Side.BUY, price_atoms=1_000, size_atoms=5 * LOT_ATOMS)  # owes 5_000 quote
SELL = make_order(Side.SELL, price_atoms=1_000, size_atoms=5 * LOT_ATOMS)  # owes 5_000 base


def pay_account(order: Order, **changes: object) -> TokenAccount:
    fields: dict[str, object] = {
        "mint": QUOTE_MINT if order.side is Side.BUY else BASE_MINT,
        "owner": order.maker,
        "amount": 10_000,
        "delegate": AUTHORITY.pubkey(),
        "delegated_amount": 10_000,
    }
    address = changes.pop("address", order.pay_account)
    fields.update(changes)
    assert isinstance(address, Pubkey)
    # The overrides are deliberately loose (any field, any value), checked by the decoder.
    return decode_token_account(address, token_account_data(**fields))  # type: ignore[arg-type]


def test_a_buy_owes_quote_at_its_limit_price_and_a_sell_owes_base() -> None:
    """A buy of 5 lots at 1_000 per lot owes 5_000 quote atoms; of 2 remaining lots,
    2_000; a sell owes its remaining base atoms."""
    assert owed_atoms(MARKET, BUY) == 5_000
    assert owed_atoms(MARKET, BUY, remaining_atoms=2 * LOT_ATOMS) == 2_000
    assert owed_atoms(MARKET, SELL, remaining_atoms=3 * LOT_ATOMS) == 3 * LOT_ATOMS


@pytest.mark.parametrize("order", [BUY, SELL], ids=["buy", "sell"])
def test_a_well_funded_order_has_no_problem(order: Order) -> None:
    """Right account, mint, owner and delegate, with enough balance and delegation."""
    assert funding_problem(MARKET, order, pay_account(order)) is None
    check_funding(MARKET, order, pay_account(order))


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"address": Pubkey(b"\x05" * 32)}, WrongAccount),
        ({"mint": BASE_MINT}, WrongAccountMint),
        ({"owner": MAKERS[1].pubkey()}, WrongAccountOwner),
        ({"state": 2}, AccountFrozen),
        ({"delegate": None}, WrongDelegate),
        ({"delegate": MAKERS[1].pubkey()}, WrongDelegate),
        ({"delegated_amount": 4_999}, InsufficientDelegation),
        ({"amount": 4_999}, InsufficientFunds),
    ],
)
def test_each_funding_problem_is_reported_on_the_pay_account(
    changes: dict[str, object], error: type[MarketError]
) -> None:
    """funding_problem returns, and check_funding raises, the specific error naming the
    pay_account field."""
    account = pay_account(BUY, **changes)
    problem = funding_problem(MARKET, BUY, account)
    assert isinstance(problem, error)
    assert problem.field == "pay_account"
    with pytest.raises(error):
        check_funding(MARKET, BUY, account)


def test_a_partly_filled_order_needs_only_what_remains() -> None:
    """4_999 quote atoms do not fund 5 lots at 1_000, but fund the 4 lots still open."""
    account = pay_account(BUY, amount=4_999, delegated_amount=4_999)
    assert funding_problem(MARKET, BUY, account) is not None
    assert funding_problem(MARKET, BUY, account, remaining_atoms=4 * LOT_ATOMS) is None


def test_other_commitments_on_the_same_account_count_against_it() -> None:
    """With 6_000 already owed by the maker's other orders, 10_000 no longer covers 5_000."""
    problem = funding_problem(MARKET, BUY, pay_account(BUY), other_commitments_atoms=6_000)
    assert isinstance(problem, InsufficientDelegation)
