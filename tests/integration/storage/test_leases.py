"""Lease locks and fencing tokens on both engines (time jumps through clock offsets)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from storage import LeaseLost, LeaseStore, open_engine

TTL_S = 30.0
# A store this far ahead of the database clock sees every TTL_S lease as expired.
FUTURE_S = TTL_S + 5


def test_first_acquire_grants_token_one_and_excludes_others(engine: Engine) -> None:
    """The first lease on a key has token 1; while it lives nobody else (but its holder) gets one."""
    lease = LeaseStore(engine, "node-a").acquire("market:1", TTL_S)
    assert lease is not None
    assert (lease.key, lease.holder, lease.fencing_token) == ("market:1", "node-a", 1)
    assert lease.expires_at > lease.acquired_at
    assert LeaseStore(engine, "node-b").acquire("market:1", TTL_S) is None
    assert LeaseStore(engine, "node-a").current("market:1") == lease


def test_taking_over_an_expired_lease_increments_the_token(engine: Engine) -> None:
    """Once a lease has expired by the database clock, another holder takes it with token + 1."""
    old = LeaseStore(engine, "node-a").acquire("market:1", TTL_S)
    new = LeaseStore(engine, "node-b", clock_offset_s=FUTURE_S).acquire("market:1", TTL_S)
    assert old is not None and new is not None
    assert new.holder == "node-b"
    assert new.fencing_token == old.fencing_token + 1


def test_renewal_extends_a_held_lease_and_keeps_its_token(engine: Engine) -> None:
    """Renewing moves the expiry forward and keeps the token."""
    store = LeaseStore(engine, "node-a")
    lease = store.acquire("market:1", 1.0)
    assert lease is not None
    renewed = store.renew(lease, TTL_S)
    assert renewed.fencing_token == lease.fencing_token
    assert renewed.expires_at > lease.expires_at


def test_renewal_after_a_takeover_raises_lease_lost(
    engine: Engine, log_records: list[dict[str, Any]]
) -> None:
    """A holder whose lease was taken over cannot renew it: LeaseLost, logged as storage.lease_lost."""
    store = LeaseStore(engine, "node-a")
    lease = store.acquire("market:1", TTL_S)
    assert lease is not None
    assert (
        LeaseStore(engine, "node-b", clock_offset_s=FUTURE_S).acquire("market:1", TTL_S) is not None
    )
    with pytest.raises(LeaseLost) as lost:
        store.renew(lease, TTL_S)
    assert lost.value.key == "market:1"
    assert any(record.get("action") == "storage.lease_lost" for record in log_records)


def test_renewal_of_an_expired_lease_raises_lease_lost_even_without_a_takeover(
    engine: Engine,
) -> None:
    """An expired lease is lost: renewing it fails even if nobody took the key since."""
    lease = LeaseStore(engine, "node-a").acquire("market:1", TTL_S)
    assert lease is not None
    with pytest.raises(LeaseLost):
        LeaseStore(engine, "node-a", clock_offset_s=FUTURE_S).renew(lease, TTL_S)


def test_tokens_never_go_back_after_release_deletes_the_row(engine: Engine) -> None:
    """Release deletes the lock row, yet the next lease on the key gets a higher token."""
    store = LeaseStore(engine, "node-a")
    tokens = []
    for _ in range(3):
        lease = store.acquire("market:1", TTL_S)
        assert lease is not None
        tokens.append(lease.fencing_token)
        assert store.release(lease) is True
        assert store.current("market:1") is None
    assert tokens == [1, 2, 3]
    assert store.last_token("market:1") == 3


def test_tokens_never_go_back_across_a_restart(engine: Engine, database_url: str) -> None:
    """A new engine (a restarted node, a restarted database connection) continues the sequence."""
    lease = LeaseStore(engine, "node-a").acquire("market:1", TTL_S)
    assert lease is not None
    LeaseStore(engine, "node-a").release(lease)
    engine.dispose()
    reopened = open_engine(database_url)
    try:
        again = LeaseStore(reopened, "node-a").acquire("market:1", TTL_S)
    finally:
        reopened.dispose()
    assert again is not None
    assert again.fencing_token == lease.fencing_token + 1


def test_a_refused_acquire_does_not_use_up_a_token(engine: Engine) -> None:
    """An acquire that finds a live lease is rolled back whole: the next granted token is still +1."""
    first = LeaseStore(engine, "node-a").acquire("market:1", TTL_S)
    assert first is not None
    for _ in range(3):
        assert LeaseStore(engine, "node-b").acquire("market:1", TTL_S) is None
    taken = LeaseStore(engine, "node-b", clock_offset_s=FUTURE_S).acquire("market:1", TTL_S)
    assert taken is not None and taken.fencing_token == first.fencing_token + 1


def test_reacquiring_a_lease_you_hold_issues_a_fresh_token(engine: Engine) -> None:
    """A holder acquiring its own live lease again gets a new token, so the old one is fenced off."""
    store = LeaseStore(engine, "node-a")
    first = store.acquire("market:1", TTL_S)
    second = store.acquire("market:1", TTL_S)
    assert first is not None and second is not None
    assert second.fencing_token == first.fencing_token + 1
    with pytest.raises(LeaseLost):
        store.renew(first, TTL_S)


def test_release_of_a_lost_lease_changes_nothing(engine: Engine) -> None:
    """Releasing a lease someone else has taken over returns False and leaves their lease alone."""
    old = LeaseStore(engine, "node-a").acquire("market:1", TTL_S)
    assert old is not None
    future = LeaseStore(engine, "node-b", clock_offset_s=FUTURE_S)
    new = future.acquire("market:1", TTL_S)
    assert LeaseStore(engine, "node-a").release(old) is False
    assert future.current("market:1") == new


def test_release_all_drops_every_lease_of_one_holder_only(engine: Engine) -> None:
    """release_all(holder) removes that holder's leases and nobody else's."""
    mine, theirs = LeaseStore(engine, "node-a"), LeaseStore(engine, "node-b")
    for index in range(3):
        assert mine.acquire(f"market:{index}", TTL_S) is not None
    assert theirs.acquire("market:9", TTL_S) is not None
    assert mine.release_all() == 3
    assert [lease.key for lease in mine.live_leases("market:")] == ["market:9"]


def test_live_leases_lists_unexpired_leases_by_prefix(engine: Engine) -> None:
    """live_leases filters by key prefix (wildcards taken literally) and hides expired leases."""
    store = LeaseStore(engine, "node-a")
    store.acquire("market:1", TTL_S)
    store.acquire("market:2", 5.0)
    store.acquire("settlement:1", TTL_S)
    store.acquire("market_1", TTL_S)  # '_' must not match ':' as a LIKE wildcard
    assert [lease.key for lease in store.live_leases("market:")] == ["market:1", "market:2"]
    later = LeaseStore(engine, "node-a", clock_offset_s=10)
    assert [lease.key for lease in later.live_leases("market:")] == ["market:1"]


def test_acquire_refuses_a_non_positive_ttl(engine: Engine) -> None:
    """A TTL of zero or less is a programming error, refused before touching the database."""
    with pytest.raises(ValueError, match="ttl_s"):
        LeaseStore(engine, "node-a").acquire("market:1", 0)
