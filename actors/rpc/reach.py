"""Whether the chain answers this node: since when every RPC endpoint's breaker is open.

Fed the router's events (:class:`~actors.rpc.state.RouterEvent`, on the router's
thread) and read from others (the LockActor, the SettlementActor, ``/health``): a
node cut from every endpoint for ``chain_handover_s`` hands its markets and its
settlement claims to the nodes that can still settle them, and takes work again once
an endpoint answers (``docs/ARCHITECTURE.md``, "Partitions").

An endpoint counts as answering from its breaker's close or a probe that got an
answer; as not answering from its breaker's opening (its failures in a row, timeouts
included: a blackholed endpoint opens its breaker in one attempt timeout per failure).
A half-open breaker is not an answer yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from actors.rpc.state import RouterEvent

__all__ = ["ChainReach"]


class ChainReach:
    """Since when no endpoint of ``endpoints`` answers, on ``clock`` (monotonic)."""

    def __init__(
        self, endpoints: Iterable[str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._endpoints = frozenset(endpoints)
        self._clock = clock
        self._lock = threading.Lock()
        self._open: set[str] = set()
        self._cut_since: float | None = None

    def observe(self, event: RouterEvent) -> None:
        """The router's observer (``on_event``)."""
        name = event.endpoint
        if name is None or name not in self._endpoints:
            return
        with self._lock:
            if event.kind == "breaker_opened":
                self._open.add(name)
                if self._open == self._endpoints and self._cut_since is None:
                    self._cut_since = self._clock()
            elif event.kind in ("breaker_closed", "probe_ok"):
                self._open.discard(name)
                self._cut_since = None

    def cut_for_s(self) -> float:
        """How long no endpoint has answered; 0.0 while one does."""
        with self._lock:
            since = self._cut_since
        return 0.0 if since is None else max(0.0, self._clock() - since)
