"""Pure pieces of the HTTP limits: token buckets, a log-line limiter, cutting echoed input.

No I/O and no clock of their own: every call takes ``now_s`` (any monotonic
seconds), so unit tests move time by hand. The HTTP server (:mod:`crank_node.node.http_server`)
and intake's routes (:mod:`crank_node.node.intake_http`) own the instances and the clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "ECHO_LIMIT",
    "KeyedBuckets",
    "LogLimiter",
    "TokenBucket",
    "clip",
    "retry_after_s",
]

ECHO_LIMIT = 64  # characters of a client's value that an answer or a log line repeats
REASON_LIMIT = 240  # a reason around a cut value: its fixed words plus the cut value


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` if at most ``limit`` characters, else its first ``limit`` and a marker
    saying how many were cut: what an answer or a log line may echo of input."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} characters cut]"


def clip_reason(reason: str) -> str:
    """A refusal's reason with any echoed value cut: a reason is a sentence of ours
    plus at most one value of the client's, so a long one is the value's fault."""
    if len(reason) <= REASON_LIMIT:
        return reason
    return clip(reason, REASON_LIMIT)


def retry_after_s(wait_s: float) -> int:
    """The whole seconds a ``Retry-After`` header says for a wait of ``wait_s`` (>= 1)."""
    return max(1, math.ceil(wait_s))


@dataclass
class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` saved; one per request."""

    rate_per_s: float
    burst: int
    tokens: float
    updated_s: float

    @classmethod
    def full(cls, rate_per_s: float, burst: int, now_s: float) -> TokenBucket:
        return cls(rate_per_s, burst, float(burst), now_s)

    def take(self, now_s: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there is one
        (nothing taken)."""
        elapsed = max(0.0, now_s - self.updated_s)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate_per_s)
        self.updated_s = now_s
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s

    def full_at(self) -> float:
        """When this bucket is full again (then it is the same as a new one)."""
        return self.updated_s + (self.burst - self.tokens) / self.rate_per_s


class KeyedBuckets:
    """One :class:`TokenBucket` per key (a client address, a maker), at most
    ``max_keys`` kept: a full bucket is forgotten first (it equals a new one), then
    the least recently used. So a flood of distinct keys costs bounded memory and
    can only give an evicted key a fresh burst, never take one from an honest key
    that is still in its window."""

    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 10_000) -> None:
        if rate_per_s <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate_per_s > 0, burst >= 1 and max_keys >= 1 are required")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now_s: float) -> float:
        """0.0 if ``key`` may go now, else the seconds until it may."""
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now_s)
            bucket = self._buckets[key] = TokenBucket.full(self.rate_per_s, self.burst, now_s)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now_s)

    def _make_room(self, now_s: float) -> None:
        if len(self._buckets) < self.max_keys:
            return
        for key, bucket in self._buckets.items():  # oldest first
            if bucket.full_at() <= now_s:
                del self._buckets[key]
                return
        self._buckets.popitem(last=False)


class LogLimiter:
    """At most one log line per key per ``interval_s``; the lines held back are counted
    and reported with the next one let through ("and N more like it")."""

    def __init__(self, interval_s: float = 10.0, max_keys: int = 1_000) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, key: str, now_s: float) -> int | None:
        """None to hold this line back, else how many like it were held back since the
        last one let through (0 the first time)."""
        last = self._last.get(key)
        if last is not None and now_s - last[0] < self.interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._last) >= self.max_keys:
            self._last.popitem(last=False)
        self._last[key] = (now_s, 0)
        self._last.move_to_end(key)
        return 0 if last is None else last[1]
