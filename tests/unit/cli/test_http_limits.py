"""crank_node/node/http_limits.py: token buckets, the log-line limiter and cutting echoed input,
with time moved by hand."""

from __future__ import annotations

from crank_node.node.http_limits import (
    KeyedBuckets,
    LogLimiter,
    TokenBucket,
    clip,
    clip_reason,
    retry_after_s,
)


def test_a_bucket_lets_a_burst_through_then_one_request_per_refill() -> None:
    """A full bucket of burst 3 at 2/s takes 3 at once, refuses the 4th saying 0.5 s,
    and takes one more half a second later."""
    bucket = TokenBucket.full(rate_per_s=2.0, burst=3, now_s=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == 0.5
    assert bucket.take(100.5) == 0.0
    assert bucket.take(100.5) == 0.5


def test_a_bucket_never_saves_more_than_its_burst() -> None:
    """An hour idle still gives only ``burst`` requests at once."""
    bucket = TokenBucket.full(rate_per_s=1.0, burst=2, now_s=0.0)
    bucket.take(0.0)
    waits = [bucket.take(3_600.0) for _ in range(3)]
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0


def test_keyed_buckets_are_independent_per_key() -> None:
    """One maker spending its burst leaves another's untouched."""
    buckets = KeyedBuckets(rate_per_s=1.0, burst=2)
    assert [buckets.take("flooder", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert buckets.take("other", 0.0) == 0.0


def test_keyed_buckets_forget_a_full_bucket_first_and_stay_bounded() -> None:
    """At max_keys a new key evicts a bucket that is full again (no one loses a
    spent window), else the least recently used; the count never passes the bound."""
    buckets = KeyedBuckets(rate_per_s=1.0, burst=1, max_keys=2)
    buckets.take("a", 0.0)  # spent: full again at t=1
    buckets.take("b", 0.5)  # spent: full again at t=1.5
    buckets.take("c", 1.2)  # "a" is full again: it goes, "b" stays spent
    assert len(buckets) == 2
    assert buckets.take("b", 1.2) > 0  # still limited
    for index in range(100):
        buckets.take(f"spray-{index}", 2.0)
    assert len(buckets) == 2


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    """Retry-After rounds up and is never 0."""
    assert [retry_after_s(w) for w in (0.01, 1.0, 1.2)] == [1, 1, 2]


def test_the_log_limiter_lets_one_line_per_interval_and_counts_the_rest() -> None:
    """Lines with one key: the first goes, those within the interval are held, the next
    one after it goes saying how many were held. Another key is not held by the first."""
    limiter = LogLimiter(interval_s=10.0)
    assert limiter.allow("refused", 0.0) == 0
    assert [limiter.allow("refused", t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert limiter.allow("other", 5.0) == 0
    assert limiter.allow("refused", 10.0) == 3
    assert limiter.allow("refused", 10.5) is None


def test_the_log_limiter_keeps_a_bounded_number_of_keys() -> None:
    """A flood of distinct keys (distinct messages) does not grow memory without end."""
    limiter = LogLimiter(interval_s=10.0, max_keys=3)
    for index in range(50):
        limiter.allow(f"k{index}", 0.0)
    assert len(limiter._last) == 3


def test_clip_keeps_short_text_and_cuts_long_text_with_a_marker() -> None:
    """64 characters kept, then a marker saying how many were cut."""
    assert clip("short") == "short"
    cut = clip("x" * 1_000_000)
    assert cut.startswith("x" * 64) and cut.endswith("[999936 characters cut]")
    assert len(cut) < 100


def test_a_reason_is_cut_only_when_an_echoed_value_makes_it_long() -> None:
    """Our own sentences stay whole; a reason carrying a 1 MB value is cut."""
    reason = "must be 1 to 32 characters of A-Z a-z 0-9 . _ -, got 'M'"
    assert clip_reason(reason) == reason
    assert len(clip_reason(reason + "A" * 1_000_000)) < 300
