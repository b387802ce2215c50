"""MatchActor's bookkeeping without a database: the queue of a market's waiting
orders, the memory of orders written out of play, and which orders a write takes
out of play."""

from __future__ import annotations

from dataclasses import dataclass

from actors.match_batch import OrderQueue, out_of_play


@dataclass(frozen=True)
class Waiting:
    order_id: str


def test_an_order_waits_once_in_arrival_order_and_leaves_from_the_head() -> None:
    """enqueue refuses a second copy; dequeue takes from the head; unqueue from anywhere."""
    queue: OrderQueue[Waiting] = OrderQueue()
    assert queue.enqueue(Waiting("a")) and queue.enqueue(Waiting("b"))
    assert not queue.enqueue(Waiting("a"))
    assert queue.enqueue(Waiting("c"))
    assert [item.order_id for item in queue] == ["a", "b", "c"] and len(queue) == 3
    queue.unqueue("b")
    queue.unqueue("missing")  # nothing waits by that id: nothing happens
    assert [item.order_id for item in queue] == ["a", "c"]
    queue.dequeue(1)
    assert queue.first() == Waiting("c")
    assert queue.enqueue(Waiting("a"))  # gone from the queue: may wait again


def test_orders_written_out_of_play_are_remembered_newest_last_within_the_bound() -> None:
    """The oldest are forgotten first once more than gone_memory are remembered."""
    queue: OrderQueue[Waiting] = OrderQueue(gone_memory=3)
    queue.remember_gone(["o1", "o2", "o3"])
    queue.remember_gone(["o4"])
    assert not queue.is_gone("o1")
    assert all(queue.is_gone(order_id) for order_id in ("o2", "o3", "o4"))


def test_a_write_takes_out_of_play_the_orders_filled_to_zero_and_the_expired() -> None:
    """Partly filled orders stay in play; filled-to-zero and expired ones do not."""
    assert out_of_play({"full": 0, "part": 5}, ["old"]) == ["full", "old"]
    assert out_of_play({}, []) == []
