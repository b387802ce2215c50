"""Is an order's money really there? Checks on decoded token accounts.

Pure: the caller fetches the accounts (``getMultipleAccounts``), decodes them
with :func:`market.token_account.decode_token_account`, and asks here. Each
check either returns the problem as an error (for OrderMonitor, which skips
unfunded orders rather than failing) or raises it (for intake).
"""

from __future__ import annotations

from typing import Literal

from solders.pubkey import Pubkey

from market.errors import (
    AccountFrozen,
    InsufficientDelegation,
    InsufficientFunds,
    MarketError,
    WrongAccount,
    WrongAccountMint,
    WrongAccountOwner,
    WrongDelegate,
)
from market.market import Market
from market.order import Order, Side
from market.token_account import TokenAccount

__all__ = [
    "AccountField",
    "account_problem",
    "check_funding",
    "funding_problem",
    "owed_atoms",
    "pay_mint",
    "receive_mint",
]


def pay_mint(market: Market, side: Side) -> Pubkey:
    """The mint an order pays in: quote for a buy, base for a sell."""
    return market.quote_mint if side is Side.BUY else market.base_mint


def receive_mint(market: Market, side: Side) -> Pubkey:
    """The mint an order receives: base for a buy, quote for a sell."""
    return market.base_mint if side is Side.BUY else market.quote_mint


def owed_atoms(market: Market, order: Order, remaining_atoms: int | None = None) -> int:
    """What the order still owes from its pay account if the rest of it fills: quote
    atoms for a buy (at its own limit price, the most it can pay), base atoms for a
    sell. ``remaining_atoms`` defaults to the whole size."""
    remaining = order.size_atoms if remaining_atoms is None else remaining_atoms
    if order.side is Side.BUY:
        return market.quote_atoms(order.price_atoms, remaining)
    return remaining


AccountField = Literal["pay_account", "receive_account"]


def account_problem(
    market: Market, order: Order, account: TokenAccount, field: AccountField
) -> MarketError | None:
    """Why ``account`` cannot serve as the order's ``field`` (``"pay_account"`` or
    ``"receive_account"``): another address, wrong mint, not the maker's, frozen."""
    expected_address = order.pay_account if field == "pay_account" else order.receive_account
    mint = (pay_mint if field == "pay_account" else receive_mint)(market, order.side)
    if account.address != expected_address:
        return WrongAccount(field, f"the order names {expected_address}, got {account.address}")
    if account.mint != mint:
        return WrongAccountMint(field, f"holds mint {account.mint}, the order needs {mint}")
    if account.owner != order.maker:
        return WrongAccountOwner(field, f"is owned by {account.owner}, not the maker")
    if account.is_frozen:
        return AccountFrozen(field)
    return None


def funding_problem(
    market: Market,
    order: Order,
    pay_account: TokenAccount,
    remaining_atoms: int | None = None,
    other_commitments_atoms: int = 0,
) -> MarketError | None:
    """Why the order is not funded, or ``None`` if it is.

    Funded means: the pay account is the order's, of the right mint, the
    maker's, not frozen; its delegate is the market's settlement authority; and
    both its balance and its delegated amount cover :func:`owed_atoms` plus
    ``other_commitments_atoms`` (what the maker's other open orders on the same
    account owe, if the caller counts them).
    """
    problem = account_problem(market, order, pay_account, "pay_account")
    if problem is not None:
        return problem
    if pay_account.delegate != market.settlement_authority:
        return WrongDelegate(
            "pay_account", f"delegate is {pay_account.delegate}, not {market.settlement_authority}"
        )
    needed = owed_atoms(market, order, remaining_atoms) + other_commitments_atoms
    if pay_account.delegated_amount < needed:
        return InsufficientDelegation(
            "pay_account", f"delegated {pay_account.delegated_amount}, needs {needed}"
        )
    if pay_account.amount < needed:
        return InsufficientFunds("pay_account", f"holds {pay_account.amount}, needs {needed}")
    return None


def check_funding(
    market: Market,
    order: Order,
    pay_account: TokenAccount,
    remaining_atoms: int | None = None,
    other_commitments_atoms: int = 0,
) -> None:
    """Raise :func:`funding_problem`'s error, if there is one."""
    problem = funding_problem(market, order, pay_account, remaining_atoms, other_commitments_atoms)
    if problem is not None:
        raise problem
