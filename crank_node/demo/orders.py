"""The demo's makers: random signed orders, paced, posted to the nodes' order intake.

Orders come from a :class:`~crank_node.harness.order_flow.OrderFlow` (never overdrawing a
maker) and go to ``POST /orders`` of each node in turn, as a maker's client
would send them, through :class:`~crank_node.harness.node_client.NodeClient`. A few worker
threads post them, so one slow answer does not hold the pace back; at most
``max_in_flight`` are outstanding. Every answer is tallied: accepted, refused
(with the node's reason) or not taken (the node could not be reached or
answered 503).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from crank_node.harness.node_client import NodeClient, NodeRefused, NodeUnreachable
from crank_node.harness.order_flow import OrderFlow
from market import SignedOrder

__all__ = ["OrderSubmitter", "SubmissionTally"]

POST_TIMEOUT_S = 15.0
# Behind by more than this (a slow node), the pace restarts from now instead of
# sending a burst to catch up.
MAX_LAG_S = 1.0


@dataclass
class SubmissionTally:
    """What the makers sent and what the nodes answered."""

    submitted: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # reason -> count
    not_taken: Counter[str] = field(default_factory=Counter)  # reason -> count
    funding_exhausted: bool = False  # no maker could afford another lot

    def to_json(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "accepted": self.accepted,
            "refused": sum(self.refused.values()),
            "refused_reasons": dict(self.refused),
            "not_taken": sum(self.not_taken.values()),
            "not_taken_reasons": dict(self.not_taken),
            "funding_exhausted": self.funding_exhausted,
        }


class OrderSubmitter:
    """Posts ``flow``'s orders to ``urls`` (round robin) at ``rate_per_s`` until stopped.

    ``available(i)`` says whether ``urls[i]`` is worth trying now (default: always),
    as a load balancer's health check would: `crank-node chaos` skips the nodes it
    has killed or frozen. When none is, the next in turn is tried anyway."""

    def __init__(
        self,
        flow: OrderFlow,
        urls: Sequence[str],
        rate_per_s: float,
        *,
        workers: int = 8,
        clock: Callable[[], float] = time.monotonic,
        post_timeout_s: float = POST_TIMEOUT_S,
        available: Callable[[int], bool] = lambda _index: True,
    ) -> None:
        if not urls:
            raise ValueError("urls: give at least one node")
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s: must be above 0, got {rate_per_s!r}")
        self._flow = flow
        self._clients = tuple(NodeClient(url, timeout_s=post_timeout_s) for url in urls)
        self._available = available
        self._interval_s = 1.0 / rate_per_s
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._tally = SubmissionTally()
        self._slots = threading.BoundedSemaphore(2 * workers)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="demo-maker")
        self._thread = threading.Thread(target=self._pace, name="demo-makers", daemon=True)
        self.finished = threading.Event()  # set when the pacing loop has ended, for any reason

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = POST_TIMEOUT_S + 5) -> None:
        """Send no more orders; wait (bounded) for the answers of those sent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def tally(self) -> SubmissionTally:
        with self._lock:
            return SubmissionTally(
                self._tally.submitted,
                self._tally.accepted,
                Counter(self._tally.refused),
                Counter(self._tally.not_taken),
                self._tally.funding_exhausted,
            )

    def _pace(self) -> None:
        try:
            self._send_until_stopped()
        finally:
            self.finished.set()

    def _send_until_stopped(self) -> None:
        next_at = self._clock()
        sent = 0
        while not self._stop.is_set():
            delay_s = next_at - self._clock()
            if delay_s > 0 and self._stop.wait(delay_s):
                return
            if not self._take_slot():
                return
            signed = self._flow.next_order()
            if signed is None:
                self._slots.release()
                with self._lock:
                    self._tally.funding_exhausted = True
                logger.bind(action="demo.funding_exhausted").warning(
                    "no maker can afford another lot: the makers stop sending orders"
                )
                return
            client = self._client(sent)
            with self._lock:
                self._tally.submitted += 1
            self._executor.submit(self._post, client, signed)
            sent += 1
            next_at = max(next_at + self._interval_s, self._clock() - MAX_LAG_S)

    def _client(self, sent: int) -> NodeClient:
        """The next available node in turn from ``sent``, or the next in turn."""
        count = len(self._clients)
        turns = (index % count for index in range(sent, sent + count))
        return self._clients[next((i for i in turns if self._available(i)), sent % count)]

    def _take_slot(self) -> bool:
        """Wait for room among the orders in flight; False once stopped."""
        while not self._slots.acquire(timeout=0.1):
            if self._stop.is_set():
                return False
        return True

    def _post(self, client: NodeClient, signed: SignedOrder) -> None:
        try:
            client.post("/orders", signed.to_json())
        except NodeRefused as error:
            self._count_failure(self._tally.refused, "refused", signed, client, error)
        except NodeUnreachable as error:
            self._count_failure(self._tally.not_taken, "not_taken", signed, client, error)
        else:
            with self._lock:
                self._tally.accepted += 1
        finally:
            self._slots.release()

    def _count_failure(
        self,
        reasons: Counter[str],
        outcome: str,
        signed: SignedOrder,
        client: NodeClient,
        error: Exception,
    ) -> None:
        with self._lock:
            reasons[str(error)] += 1
        logger.bind(action=f"demo.order_{outcome}", order_id=signed.order_id).warning(
            f"order {signed.order_id} {outcome.replace('_', ' ')} by {client.base_url}: {error}"
        )
