"""SettlementWork.needs_attempt and ClaimedSettlements.newest_first: what the actor
asks of every work it holds, several times a slot."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

import storage
from actors.settlement.claimed import ClaimedSettlements
from actors.settlement.protocol import UNRESOLVED
from actors.settlement.work import SettlementWork
from storage.models import ATTEMPT_STATES
from supervision import ManualClock


def attempt(number: int, state: str) -> storage.AttemptRecord:
    return storage.AttemptRecord("s1", number, f"sig{number}", b"", "hash", 100, 1, state)


def work(row_id: str, *states: str) -> SettlementWork:
    claim = storage.Claim("settlements", row_id, "node", 1, datetime.now(UTC))
    # needs_attempt reads neither the fill nor the market.
    unused = cast(Any, None)
    return SettlementWork(
        claim, 0.0, unused, unused, [attempt(n, s) for n, s in enumerate(states, 1)]
    )


def test_a_work_with_no_attempt_needs_one() -> None:
    assert work("1").needs_attempt


@pytest.mark.parametrize("state", sorted(UNRESOLVED))
def test_an_attempt_that_could_still_land_means_no_new_one(state: str) -> None:
    assert not work("1", "expired", state).needs_attempt
    assert not work("1", state, "expired").needs_attempt


def test_attempts_all_resolved_mean_a_new_one() -> None:
    resolved = [state for state in ATTEMPT_STATES if state not in UNRESOLVED]
    assert resolved
    checked = work("1", *resolved)
    checked.needs_check = False  # as after the chain was asked
    assert checked.needs_attempt


def test_a_work_to_check_first_needs_no_attempt_until_checked() -> None:
    recovered = work("1", "expired")  # a claim with attempts: the chain is asked first
    assert recovered.needs_check and not recovered.needs_attempt
    recovered.needs_check = False
    assert recovered.needs_attempt


def test_newest_first_is_the_reverse_of_claim_order() -> None:
    claims = ClaimedSettlements(
        cast(Any, None),
        "node",
        {},
        claim_ttl_s=30.0,
        clock=ManualClock(),
        db_time_offset_s=lambda: 0.0,
    )
    for row_id in ("a", "b", "c"):
        claims.works[row_id] = work(row_id)
    assert [w.id for w in claims.newest_first()] == ["c", "b", "a"]
    assert [w.id for w in claims] == ["a", "b", "c"]
