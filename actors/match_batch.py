"""MatchActor's bookkeeping, pure: a market's queue of orders waiting to be matched,
the orders it wrote out of play, and one batch of matches written together.

No I/O, no clock, no thread: MatchActor keeps one :class:`OrderQueue` per market it
holds and builds a :class:`MatchBatch` per write; tests/unit/test_match_batch.py
pins the rules without a database.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import market as domain
from market.matching import combine

__all__ = ["GONE_MEMORY", "BatchOutcome", "MatchBatch", "OrderQueue", "Queued", "out_of_play"]

# Orders per market remembered as written out of play (see OrderQueue.gone); by the
# time this many newer ones were written, OrderMonitor has long seen the oldest go.
GONE_MEMORY = 100_000


class Queued(Protocol):
    """What the queue needs of a waiting order: its id."""

    @property
    def order_id(self) -> str: ...


T = TypeVar("T", bound=Queued)


@dataclass
class OrderQueue(Generic[T]):
    """Orders waiting their turn, in arrival order, each at most once; and the orders
    written out of play (filled to 0, expired), newest last: an OrderAdded for one of
    them is a snapshot read before that write (OrderMonitor polls on its own clock),
    not a new order, and matching it again would conflict and reload the whole book.
    ``gone`` is bounded by :data:`GONE_MEMORY`."""

    waiting: deque[T] = field(default_factory=deque)
    gone: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # The ids of the orders waiting: an order id is a hash of the order's terms,
    # computed anew each time it is asked for, and a burst of OrderAdded messages
    # queues many orders before they are matched.
    waiting_ids: set[str] = field(default_factory=set)
    gone_memory: int = GONE_MEMORY

    def __len__(self) -> int:
        return len(self.waiting)

    def __iter__(self) -> Iterator[T]:
        return iter(self.waiting)

    def first(self) -> T:
        return self.waiting[0]

    def enqueue(self, item: T) -> bool:
        """Queue ``item``; False if it is already waiting its turn."""
        order_id = item.order_id
        if order_id in self.waiting_ids:
            return False
        self.waiting.append(item)
        self.waiting_ids.add(order_id)
        return True

    def dequeue(self, count: int) -> None:
        """Take the first ``count`` orders off the queue."""
        for _ in range(count):
            self.waiting_ids.discard(self.waiting.popleft().order_id)

    def unqueue(self, order_id: str) -> None:
        """Take ``order_id`` out of the queue, wherever it waits."""
        if order_id in self.waiting_ids:
            self.waiting = deque(item for item in self.waiting if item.order_id != order_id)
            self.waiting_ids.discard(order_id)

    def remember_gone(self, order_ids: Iterable[str]) -> None:
        for order_id in order_ids:
            self.gone[order_id] = None
        while len(self.gone) > self.gone_memory:
            self.gone.popitem(last=False)

    def is_gone(self, order_id: str) -> bool:
        return order_id in self.gone


class BatchOutcome(enum.Enum):
    """What became of the orders at the head of a market's queue."""

    DONE = "done"  # handled (matched and written, or ignored): next orders
    RELOAD = "reload"  # handled, but the book must be reloaded first
    RETRY = "retry"  # not handled: try them again later
    DROPPED = "dropped"  # the market was dropped


def out_of_play(remaining_atoms: Mapping[str, int], expired_order_ids: Iterable[str]) -> list[str]:
    """The orders a match write takes out of play: filled to 0, or expired."""
    return [order_id for order_id, left in remaining_atoms.items() if left == 0] + list(
        expired_order_ids
    )


@dataclass
class MatchBatch:
    """Orders at the head of a market's queue, matched one after the other in memory."""

    book: domain.Book
    taken: int = 0  # orders of the queue's head handled, matched or ignored
    matched: list[tuple[str, domain.MatchResult]] = field(default_factory=list)
    fills: int = 0
    out_of_play: set[str] = field(default_factory=set)  # filled to 0 or expired in it

    @property
    def order_ids(self) -> list[str]:
        return [order_id for order_id, _result in self.matched]

    def add(self, order_id: str, result: domain.MatchResult) -> None:
        self.book = result.book
        self.matched.append((order_id, result))
        self.fills += len(result.fills)
        self.out_of_play.update(out_of_play(result.remaining_atoms, result.expired_order_ids))

    def write(self) -> domain.Uncrossed:
        """Every match of the batch as one write: the book after the last, all fills."""
        return combine(self.book, (result for _order_id, result in self.matched))
