"""A reproducible stream of random signed orders for a
:class:`~crank_node.harness.scenario.Scenario`.

Each order picks a market, a maker, a side, a price near the market's mid price
(on the tick grid) and a size (whole lots), is signed by its maker, and pays
from and receives into the maker's token accounts of the right mints. With
probability ``cross_probability`` an order is *aggressive*: priced through the
mid (a buy above it, a sell at or below it), so it crosses the resting orders on
the other side; otherwise it is *passive* and rests on its own side of the mid.

**Never overdrawn.** The flow reserves, per maker and mint, what each order it
emitted could still take from the pay account if it fills entirely
(``market.owed_atoms``: base atoms for a sell, quote atoms at the order's own
limit price for a buy), and sizes every order to fit what is left of the
delegated amount. Fills pay at most that, so however the orders match, no
settlement can take more than a maker delegated. :meth:`OrderFlow.release` gives
back the reserve of an order that left the book unfilled (cancelled, expired).
When no maker can afford a single lot anywhere, even at the lowest price it
quotes, the flow ends.

**Reproducible.** The same seed, scenario shape (markets, makers, funding, lot
and tick sizes) and releases give the same terms: market and maker by index,
side, price, size, client order id, nonce, and expiry as ``now_s`` says. The
keys differ from one scenario to the next; see :func:`order_terms`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import NamedTuple

from solders.pubkey import Pubkey

from crank_node.harness.scenario import Scenario
from market import Order, Side, SignedOrder, owed_atoms, pay_mint, receive_mint, sign_order

__all__ = ["DEFAULT_MAX_LOTS", "DEFAULT_SPREAD_TICKS", "OrderFlow", "OrderTerms", "order_terms"]

DEFAULT_MAX_LOTS = 10
DEFAULT_SPREAD_TICKS = 5
# Mid prices are drawn per market from this range of ticks (the default tick makes
# 1_000 ticks one quote token per base token).
MID_TICKS_RANGE = (800, 1_200)


class OrderTerms(NamedTuple):
    """An order's terms with its market and maker named by index: what a seed reproduces."""

    market_index: int
    maker_index: int
    side: Side
    price_atoms: int
    size_atoms: int
    client_order_id: int
    nonce: int
    expiry_s: int


def order_terms(scenario: Scenario, order: Order) -> OrderTerms:
    market_index = [m.market_id for m in scenario.markets].index(order.market_id)
    return OrderTerms(
        market_index,
        scenario.maker_index(order.maker),
        order.side,
        order.price_atoms,
        order.size_atoms,
        order.client_order_id,
        order.nonce,
        order.expiry_s,
    )


class _Draw(NamedTuple):
    """One order's dice, thrown before knowing whether its maker can afford it."""

    market_index: int
    maker_index: int
    side: Side
    aggressive: bool
    offset_ticks: int
    lots: int


class OrderFlow:
    """An iterator of signed orders for ``scenario`` (module docstring).

    ``now_s`` is read once per order, for its expiry (``now + ttl_s``).
    ``first_id`` numbers each maker's first order (client order id and nonce
    alike); another flow over the same makers and database needs ids of its own.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int,
        now_s: Callable[[], float],
        cross_probability: float = 0.5,
        ttl_s: int = 3600,
        max_lots: int = DEFAULT_MAX_LOTS,
        spread_ticks: int = DEFAULT_SPREAD_TICKS,
        first_id: int = 1,
    ) -> None:
        if not 0.0 <= cross_probability <= 1.0:
            raise ValueError(f"cross_probability: must be within 0..1, got {cross_probability!r}")
        for name, value in (("ttl_s", ttl_s), ("max_lots", max_lots), ("first_id", first_id)):
            if value < 1:
                raise ValueError(f"{name}: must be at least 1, got {value!r}")
        if not 1 <= spread_ticks < MID_TICKS_RANGE[0]:
            raise ValueError(f"spread_ticks: must be within 1..{MID_TICKS_RANGE[0] - 1}")
        self.scenario = scenario
        self._now_s = now_s
        self._cross_probability = cross_probability
        self._ttl_s = ttl_s
        self._max_lots = max_lots
        self._spread_ticks = spread_ticks
        # Seeded on purpose: the dice decide test orders, not secrets.
        self._rng = random.Random(seed)  # noqa: S311
        self._mid_ticks = tuple(self._rng.randint(*MID_TICKS_RANGE) for _ in scenario.markets)
        self._next_id = [first_id] * len(scenario.makers)
        self._reserved: dict[tuple[Pubkey, Pubkey], int] = {}
        self.emitted = 0

    def __iter__(self) -> Iterator[SignedOrder]:
        return self

    def __next__(self) -> SignedOrder:
        signed = self.next_order()
        if signed is None:
            raise StopIteration
        return signed

    def take(self, count: int) -> list[SignedOrder]:
        """Up to ``count`` orders (fewer if the makers' funding runs out)."""
        orders: list[SignedOrder] = []
        while len(orders) < count and (signed := self.next_order()) is not None:
            orders.append(signed)
        return orders

    def mid_price_atoms(self, market_id: str) -> int:
        market = self.scenario.market(market_id)
        return self._mid_ticks[self.scenario.markets.index(market)] * market.tick_size_atoms

    def reserved_atoms(self, maker: Pubkey, mint: Pubkey) -> int:
        """What the maker's emitted, unreleased orders could take from their ``mint`` account."""
        return self._reserved.get((maker, mint), 0)

    def available_atoms(self, maker: Pubkey, mint: Pubkey) -> int:
        return self.scenario.funding_atoms(mint) - self.reserved_atoms(maker, mint)

    def release(self, order: Order, unfilled_atoms: int) -> None:
        """``order`` left the book with ``unfilled_atoms`` never filled: its reserve for
        them is free again. Fills are never released: they paid. Raises ValueError if the
        maker has less than that reserved on the order's pay mint."""
        market = self.scenario.market(order.market_id)
        key = (order.maker, pay_mint(market, order.side))
        freed = owed_atoms(market, order, unfilled_atoms)
        if freed > self._reserved.get(key, 0):
            raise ValueError(f"release: {order.order_id} never reserved {freed} atoms")
        self._reserved[key] -= freed

    def next_order(self) -> SignedOrder | None:
        """The next order, or ``None`` when no maker can afford one lot anywhere, even
        at the lowest price the flow quotes."""
        draw = self._draw()
        # Then the cheapest buy (passive, furthest below the mid): the last thing to afford.
        cheapest = draw._replace(aggressive=False, offset_ticks=self._spread_ticks - 1)
        for candidate in (*self._candidates(draw), *self._candidates(cheapest)):
            order = self._order(candidate)
            if order is not None:
                return self._emit(order)
        return None

    def _draw(self) -> _Draw:
        rng = self._rng
        return _Draw(
            market_index=rng.randrange(len(self.scenario.markets)),
            maker_index=rng.randrange(len(self.scenario.makers)),
            side=rng.choice((Side.BUY, Side.SELL)),
            aggressive=rng.random() < self._cross_probability,
            offset_ticks=rng.randrange(self._spread_ticks),
            lots=rng.randint(1, self._max_lots),
        )

    def _candidates(self, draw: _Draw) -> Iterator[_Draw]:
        """The draw, then (if its maker cannot afford it) every other market, maker and
        side in a fixed rotation starting from it, with the same price dice."""
        markets, makers = len(self.scenario.markets), len(self.scenario.makers)
        sides = (draw.side, draw.side.opposite)
        start = draw.market_index * makers + draw.maker_index
        for step in range(markets * makers):
            market_index, maker_index = divmod((start + step) % (markets * makers), makers)
            for side in sides:
                yield draw._replace(market_index=market_index, maker_index=maker_index, side=side)

    def _order(self, draw: _Draw) -> Order | None:
        """The draw's order, its size cut to what the maker can still pay; None if not a lot."""
        market = self.scenario.markets[draw.market_index]
        maker = self.scenario.makers[draw.maker_index].pubkey()
        price_atoms = self._price_ticks(draw) * market.tick_size_atoms
        per_lot = market.lot_size_atoms
        if draw.side is Side.BUY:
            per_lot = market.quote_atoms(price_atoms, market.lot_size_atoms)
        affordable = self.available_atoms(maker, pay_mint(market, draw.side)) // per_lot
        lots = min(draw.lots, affordable)
        if lots < 1:
            return None
        number = self._next_id[draw.maker_index]
        accounts = self.scenario.token_account
        return Order(
            market_id=market.market_id,
            side=draw.side,
            price_atoms=price_atoms,
            size_atoms=lots * market.lot_size_atoms,
            maker=maker,
            pay_account=accounts(maker, pay_mint(market, draw.side)),
            receive_account=accounts(maker, receive_mint(market, draw.side)),
            client_order_id=number,
            expiry_s=int(self._now_s()) + self._ttl_s,
            nonce=number,
        )

    def _price_ticks(self, draw: _Draw) -> int:
        """Passive: a buy at mid - k, a sell at mid + 1 + k (they never cross each other).
        Aggressive: a buy at mid + 1 + k, a sell at mid - k (through the other side)."""
        mid = self._mid_ticks[draw.market_index]
        above, below = mid + 1 + draw.offset_ticks, mid - draw.offset_ticks
        is_buy = draw.side is Side.BUY
        return above if is_buy == draw.aggressive else below

    def _emit(self, order: Order) -> SignedOrder:
        market = self.scenario.market(order.market_id)
        key = (order.maker, pay_mint(market, order.side))
        self._reserved[key] = self._reserved.get(key, 0) + owed_atoms(market, order)
        maker_index = self.scenario.maker_index(order.maker)
        self._next_id[maker_index] += 1
        self.emitted += 1
        return sign_order(order, self.scenario.makers[maker_index])
