"""Checking a signed order or cancel against markets, the clock and other orders.

Pure: the caller passes everything (markets, ``now_s``, what already exists,
decoded token accounts); nothing here reads a clock, a database or the chain.
Every refusal is a :class:`~market.errors.MarketError` naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping

from solders.pubkey import Pubkey

from market.cancel import SignedCancel
from market.errors import (
    CancelExpired,
    DuplicateClientOrderId,
    InvalidField,
    InvalidPrice,
    InvalidSize,
    MarketError,
    OrderExpired,
    UnknownMarket,
    WrongSigner,
)
from market.fields import U64_MAX
from market.funding import account_problem
from market.market import Market
from market.order import Order
from market.signing import SignedOrder
from market.token_account import TokenAccount

__all__ = ["DuplicateCheck", "validate_cancel", "validate_order", "validate_terms"]

# Either the set of (maker, client_order_id) pairs already taken, or a predicate
# answering for one pair (e.g. a database lookup the caller wraps).
DuplicateCheck = Container[tuple[Pubkey, int]] | Callable[[Pubkey, int], bool]


def validate_order(
    signed: SignedOrder,
    *,
    markets: Mapping[str, Market],
    now_s: int,
    existing: DuplicateCheck = frozenset(),
    pay_account: TokenAccount | None = None,
    receive_account: TokenAccount | None = None,
) -> Market:
    """Return the order's market if the order may be accepted; raise otherwise.

    Checks, in this order (the first failure is raised): the market exists;
    :func:`validate_terms`; not expired at ``now_s``; the maker's signature;
    ``(maker, client_order_id)`` not in ``existing``; and, when given, the
    token accounts are the order's, of the right mint, the maker's, not frozen.
    Funding (balance, delegate) is :func:`market.funding.check_funding`'s job.
    """
    order = signed.order
    market = markets.get(order.market_id)
    if market is None:
        raise UnknownMarket("market_id", f"no market {order.market_id!r}")
    validate_terms(market, order)
    if order.is_expired(now_s):
        raise OrderExpired("expiry_s", f"expired at {order.expiry_s}, now is {now_s}")
    signed.verify()
    if _is_duplicate(existing, order.maker, order.client_order_id):
        raise DuplicateClientOrderId("client_order_id")
    if pay_account is not None:
        _raise_if(account_problem(market, order, pay_account, "pay_account"))
    if receive_account is not None:
        _raise_if(account_problem(market, order, receive_account, "receive_account"))
    return market


def _raise_if(problem: MarketError | None) -> None:
    if problem is not None:
        raise problem


def validate_terms(market: Market, order: Order) -> None:
    """The order's numbers fit ``market``: price a positive multiple of the tick,
    size a positive multiple of the lot, and its whole quote amount a u64 (so
    every settlement leg can be a ``TransferChecked``)."""
    if order.price_atoms <= 0 or order.price_atoms % market.tick_size_atoms:
        raise InvalidPrice(
            "price_atoms",
            f"must be a positive multiple of the tick size {market.tick_size_atoms}, "
            f"got {order.price_atoms}",
        )
    if order.size_atoms <= 0 or order.size_atoms % market.lot_size_atoms:
        raise InvalidSize(
            "size_atoms",
            f"must be a positive multiple of the lot size {market.lot_size_atoms}, "
            f"got {order.size_atoms}",
        )
    if market.quote_atoms(order.price_atoms, order.size_atoms) > U64_MAX:
        raise InvalidSize("size_atoms", "price times size exceeds a u64 amount of quote atoms")


def _is_duplicate(existing: DuplicateCheck, maker: Pubkey, client_order_id: int) -> bool:
    if callable(existing):
        return bool(existing(maker, client_order_id))
    return (maker, client_order_id) in existing


def validate_cancel(
    signed: SignedCancel,
    order: Order,
    *,
    now_s: int,
    max_age_s: int = 300,
    max_skew_s: int = 30,
) -> None:
    """Raise unless ``signed`` validly cancels ``order`` at ``now_s``.

    The request must name ``order``'s id, come from its maker with a good
    signature, and be signed no more than ``max_age_s`` ago nor more than
    ``max_skew_s`` ahead of ``now_s`` (clocks differ a little; replays are bounded).
    """
    request = signed.request
    if request.order_id != order.order_id:
        raise InvalidField("order_id", "the cancel names another order")
    if request.maker != order.maker:
        raise WrongSigner("maker", "only the order's maker may cancel it")
    signed.verify()
    if not now_s - max_age_s <= request.timestamp_s <= now_s + max_skew_s:
        raise CancelExpired(
            "timestamp_s",
            f"{request.timestamp_s} is not within {max_age_s}s before or {max_skew_s}s "
            f"after now ({now_s})",
        )
