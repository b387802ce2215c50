"""End-to-end authorization: the node never moves a maker's tokens beyond what the maker signed.

**The invariant.** The node holds delegate authority over every maker's pay
account, so anything it signs can move their tokens. It therefore never signs a
settlement, and never lets an order rest in a book, that the makers' own
signatures do not authorize. The database is shared infrastructure (its
credentials sit on every node), so nothing in it is trusted for that: every
row is checked against what the makers signed, here, right before it is used.

Checked before *every* settlement attempt is signed (on every node, after
recovery too), from the stored rows alone (:func:`settlement_refusal`):

0. the market's definition (mints, decimals, lot and tick sizes, authority,
   token programs) is signed by its settlement authority
   (:func:`market_definition_refusal`): an order's price is per lot, so an
   edited lot size alone would make a buyer pay many times what they signed;
1. the fill row still says what the settlement is built from;
2. each of the two orders: its row rebuilds, its terms hash to its id, its
   maker's ed25519 signature over the canonical bytes holds, it is of the
   fill's market, and it was not expired when the fill was written (the
   fill's ``created_at``, which is the database's clock);
3. sides opposite (the taker's the fill's ``taker_side``); the fill's price
   within both limits (the buy's at least, the sell's at most);
4. the amounts: a positive whole number of lots, quote = price x lots, as the
   market's rules say (:meth:`market.market.Market.quote_atoms`);
5. every fill of each order in the database (this one included) adds up to
   no more than the order's size;
6. the accounts the transaction moves tokens between are the ones the orders
   name: seller's pay -> buyer's receive for base, buyer's pay -> seller's
   receive for quote, the makers the orders' makers (the mints are the
   market's, fixed by :func:`market.settlement.settlement_instructions`).

Checked when a book is loaded and before an order from the database is
matched (:func:`order_refusal`; the market's own check 0 is the caller's, before
it loads the book): 2 without the fill's time, and the order's numbers fit its
market. Cancels read from the database (:func:`cancel_refusal`,
:mod:`market.cancel_record`): the maker's signature over the cancel and its
freshness against the time it was stored (the database's clock).

Pure and fast (microseconds): signatures are the only costly part (~50 us
each), and an order is immutable (its id is the hash of its terms), so a
verified (order id, signature) pair is remembered in :data:`VERIFIED` for the
life of the process: each pair is verified at least once per process (and
:meth:`market.signing.SignedOrder.is_signed_by_maker` remembers it too, so a
signature intake verified is not verified again here). A
refusal is an :class:`Unauthorized` naming the field and the ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from solders.signature import Signature

from market.cancel import SignedCancel
from market.definition import market_definition_bytes
from market.errors import MarketError
from market.fill import Fill
from market.market import Market
from market.order import Order, Side
from market.signing import SignedOrder, forget_verified_signatures
from market.validation import validate_cancel, validate_terms

__all__ = [
    "VERIFIED",
    "SettlementEvidence",
    "StoredFill",
    "Unauthorized",
    "VerifiedSignatures",
    "authorize_settlement",
    "cancel_refusal",
    "market_definition_refusal",
    "order_refusal",
    "settlement_refusal",
]


class Unauthorized(MarketError):
    """the makers' signatures do not authorize it."""


class VerifiedSignatures:
    """(order id, signature) pairs whose signature was verified in this process.

    The id is the hash of the terms, maker included, and is recomputed from the
    terms before every lookup: a pair is good for exactly those terms. Bounded:
    past ``max_entries`` it starts afresh (a pair is then verified once more).
    Safe to share between threads (a race verifies a pair twice, no more).
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._max = max_entries
        self._good: set[tuple[str, bytes]] = set()

    def is_signed(self, order_id: str, signed: SignedOrder) -> bool:
        """Whether ``signed``'s maker signed its terms (``order_id`` is their hash)."""
        key = (order_id, bytes(signed.signature))
        if key in self._good:
            return True
        if not signed.is_signed_by_maker():
            return False
        if len(self._good) >= self._max:
            self._good.clear()
        self._good.add(key)
        return True

    def forget(self) -> None:
        """Verify every pair afresh (tests; nothing needs it in production), also those
        :meth:`SignedOrder.is_signed_by_maker` remembers for the whole process."""
        self._good.clear()
        forget_verified_signatures()

    def __len__(self) -> int:
        return len(self._good)


VERIFIED: Final = VerifiedSignatures()
# (definition bytes, signature) pairs verified in this process: one per market, in practice.
_VERIFIED_DEFINITIONS: set[tuple[bytes, bytes]] = set()
_MAX_VERIFIED_DEFINITIONS = 10_000


def market_definition_refusal(market: Market, signature: Signature | None) -> Unauthorized | None:
    """Why ``market`` may not be matched or settled (None if it may): ``signature`` is
    missing or is not its settlement authority's over its definition
    (:func:`market.definition.market_definition_bytes`), i.e. a field of the stored
    market was changed after it was signed, or it was never signed."""
    where = f"market {market.market_id}"
    if signature is None:
        return Unauthorized(
            "definition_signature",
            f"{where}: its definition is not signed by its settlement authority "
            f"{market.settlement_authority} (`crank-node market sign`)",
        )
    message = market_definition_bytes(market)
    key = (message, bytes(signature))
    if key in _VERIFIED_DEFINITIONS:
        return None
    if not signature.verify(market.settlement_authority, message):
        return Unauthorized(
            "definition_signature",
            f"{where}: its stored definition is not what its settlement authority "
            f"{market.settlement_authority} signed (a field was changed after signing)",
        )
    if len(_VERIFIED_DEFINITIONS) >= _MAX_VERIFIED_DEFINITIONS:
        _VERIFIED_DEFINITIONS.clear()
    _VERIFIED_DEFINITIONS.add(key)
    return None


@dataclass(frozen=True)
class StoredFill:
    """A ``fills`` row as the database holds it now."""

    fill_id: str
    market_id: str
    maker_order_id: str
    taker_order_id: str
    price_atoms: int
    base_atoms: int
    quote_atoms: int
    created_at_s: float  # the database's clock when the fill was written


@dataclass(frozen=True)
class SettlementEvidence:
    """What the database says now about one fill, read right before its settlement is signed.

    ``orders``: the fill's orders rebuilt from their rows, by the row's id (not
    checked: :func:`settlement_refusal` does); ``unreadable``: why a row could not
    be rebuilt, by id; ``filled_atoms``: base atoms of all fills of each order in
    the database, this one included.
    """

    stored_fill: StoredFill | None
    orders: Mapping[str, SignedOrder] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)
    filled_atoms: Mapping[str, int] = field(default_factory=dict)


def authorize_settlement(
    market: Market,
    fill: Fill,
    evidence: SettlementEvidence,
    *,
    verified: VerifiedSignatures = VERIFIED,
) -> None:
    """Raise :func:`settlement_refusal`'s refusal, if any."""
    refusal = settlement_refusal(market, fill, evidence, verified=verified)
    if refusal is not None:
        raise refusal


def settlement_refusal(
    market: Market,
    fill: Fill,
    evidence: SettlementEvidence,
    *,
    verified: VerifiedSignatures = VERIFIED,
) -> Unauthorized | None:
    """Why the settlement of ``fill`` on ``market`` is not authorized (None if it is).

    ``fill`` is what the transaction is built from; ``evidence`` is the database
    read just before signing. The checks are the module docstring's, in order; the
    first failure is returned.
    """
    where = f"fill {fill.fill_id}"
    if fill.market_id != market.market_id:
        return Unauthorized(
            "market_id", f"{where} is of {fill.market_id!r}, not {market.market_id!r}"
        )
    refusal = market_definition_refusal(market, market.definition_signature)
    if refusal is not None:
        return Unauthorized(refusal.field, f"{where}: {refusal.reason}")
    problem = _fill_row_problem(fill, evidence.stored_fill)
    if problem is not None:
        return problem
    assert evidence.stored_fill is not None  # _fill_row_problem refuses a missing row
    fill_time_s = evidence.stored_fill.created_at_s
    orders: dict[str, Order] = {}
    for role, order_id in (("maker", fill.maker_order_id), ("taker", fill.taker_order_id)):
        found = _order_at_fill(
            role, order_id, market, evidence, fill_time_s=fill_time_s, verified=verified
        )
        if isinstance(found, Unauthorized):
            return found
        orders[role] = found
    return _terms_problem(market, fill, orders["maker"], orders["taker"], evidence.filled_atoms)


def order_refusal(
    order_id: str,
    signed: SignedOrder,
    market: Market,
    *,
    verified: VerifiedSignatures = VERIFIED,
) -> Unauthorized | None:
    """Why the order stored as ``order_id`` may not rest in ``market``'s book (None if it may):
    its terms hash to another id, it is another market's, its numbers do not fit
    the market, or its maker did not sign it."""
    order = signed.order
    terms_id = order.order_id
    if terms_id != order_id:
        return Unauthorized("order_id", f"order {order_id}: its stored terms hash to {terms_id}")
    if order.market_id != market.market_id:
        return Unauthorized(
            "market_id", f"order {order_id} is of {order.market_id!r}, not {market.market_id!r}"
        )
    try:
        validate_terms(market, order)
    except MarketError as error:
        return Unauthorized(error.field, f"order {order_id}: {error.reason}")
    if not verified.is_signed(terms_id, signed):
        return Unauthorized("signature", f"order {order_id}: not signed by its maker {order.maker}")
    return None


def cancel_refusal(
    signed: SignedCancel,
    order: Order,
    *,
    stored_at_s: float,
    max_age_s: int = 300,
    max_skew_s: int = 30,
) -> Unauthorized | None:
    """Why a cancel read from the database does not cancel ``order`` (None if it does):
    it names another order or maker, its maker did not sign it, or it was not fresh
    when stored (``stored_at_s``, the database's clock; the window of
    :func:`market.validation.validate_cancel`)."""
    try:
        validate_cancel(
            signed, order, now_s=int(stored_at_s), max_age_s=max_age_s, max_skew_s=max_skew_s
        )
    except MarketError as error:
        return Unauthorized(error.field, f"cancel of order {order.order_id}: {error.reason}")
    return None


# -- the parts of settlement_refusal ------------------------------------------------------


def _fill_row_problem(fill: Fill, stored: StoredFill | None) -> Unauthorized | None:
    where = f"fill {fill.fill_id}"
    if stored is None:
        return Unauthorized("fill_id", f"{where}: no such fill row in the database")
    for name in (
        "fill_id",
        "market_id",
        "maker_order_id",
        "taker_order_id",
        "price_atoms",
        "base_atoms",
        "quote_atoms",
    ):
        signed_for, now = getattr(fill, name), getattr(stored, name)
        if signed_for != now:
            return Unauthorized(
                name, f"{where}: the row says {now!r}, the settlement {signed_for!r}"
            )
    return None


def _order_at_fill(
    role: str,
    order_id: str,
    market: Market,
    evidence: SettlementEvidence,
    *,
    fill_time_s: float,
    verified: VerifiedSignatures,
) -> Order | Unauthorized:
    """The fill's ``role`` order, checked (signature, id, market, terms, unexpired)."""
    field_name = f"{role}_order_id"
    signed = evidence.orders.get(order_id)
    if signed is None:
        why = evidence.unreadable.get(order_id, "no such order row in the database")
        return Unauthorized(field_name, f"order {order_id}: {why}")
    refusal = order_refusal(order_id, signed, market, verified=verified)
    if refusal is not None:
        return refusal
    order = signed.order
    if fill_time_s >= order.expiry_s:
        return Unauthorized(
            "expiry_s",
            f"order {order_id} expired at {order.expiry_s}, "
            f"before the fill's time {fill_time_s:.3f}",
        )
    return order


def _terms_problem(
    market: Market, fill: Fill, maker: Order, taker: Order, filled_atoms: Mapping[str, int]
) -> Unauthorized | None:
    where = f"fill {fill.fill_id}"
    if maker.side is taker.side or fill.taker_side is not taker.side:
        return Unauthorized(
            "taker_side",
            f"{where}: maker {maker.side.value}, taker {taker.side.value}, "
            f"fill says taker {fill.taker_side.value}",
        )
    buy, sell = (taker, maker) if taker.side is Side.BUY else (maker, taker)
    if not sell.price_atoms <= fill.price_atoms <= buy.price_atoms:
        return Unauthorized(
            "price_atoms",
            f"{where}: price {fill.price_atoms} is outside the limits "
            f"(sell at least {sell.price_atoms}, buy at most {buy.price_atoms})",
        )
    problem = _amounts_problem(market, fill)
    if problem is not None:
        return problem
    for order in (maker, taker):
        order_id = order.order_id
        filled = filled_atoms.get(order_id, 0)
        if filled < fill.base_atoms or filled > order.size_atoms:
            return Unauthorized(
                "base_atoms",
                f"order {order_id}: its fills add up to {filled} base atoms, "
                f"its size is {order.size_atoms} (fill {fill.fill_id})",
            )
    return _accounts_problem(fill, buy, sell)


def _amounts_problem(market: Market, fill: Fill) -> Unauthorized | None:
    lots, remainder = divmod(fill.base_atoms, market.lot_size_atoms)
    if lots <= 0 or remainder:
        return Unauthorized(
            "base_atoms",
            f"fill {fill.fill_id}: {fill.base_atoms} is not a positive whole number of lots "
            f"of {market.lot_size_atoms}",
        )
    if fill.quote_atoms != fill.price_atoms * lots:
        return Unauthorized(
            "quote_atoms",
            f"fill {fill.fill_id}: {fill.quote_atoms}, but {lots} lots at {fill.price_atoms} "
            f"make {fill.price_atoms * lots}",
        )
    return None


def _accounts_problem(fill: Fill, buy: Order, sell: Order) -> Unauthorized | None:
    pairs = (
        ("buyer", fill.buyer, buy.maker),
        ("seller", fill.seller, sell.maker),
        ("buyer_pay_account", fill.buyer_pay_account, buy.pay_account),
        ("buyer_receive_account", fill.buyer_receive_account, buy.receive_account),
        ("seller_pay_account", fill.seller_pay_account, sell.pay_account),
        ("seller_receive_account", fill.seller_receive_account, sell.receive_account),
    )
    for name, in_fill, signed_for in pairs:
        if in_fill != signed_for:
            return Unauthorized(
                name, f"fill {fill.fill_id}: moves {in_fill}, the order signed for {signed_for}"
            )
    return None
