"""Fault descriptions: parsing the admin body, refusing bad fields, rolling the dice."""

from __future__ import annotations

import random
from typing import Any

import pytest

from localnet.errors import InvalidFaults
from localnet.faults import FaultError, Faults, plan_request


def test_a_body_round_trips_through_json() -> None:
    """from_json(to_json(f)) == f, with the error as its wire name."""
    faults = Faults(
        latency_ms=50, jitter_ms=10, error_rate=0.25, error=FaultError.HTTP_429, lag_slots=3
    )
    assert faults.to_json()["error"] == "http_429"
    assert Faults.from_json(faults.to_json()) == faults


def test_absent_fields_are_healthy_and_an_empty_body_heals() -> None:
    """Setting faults replaces them: what the body omits is off."""
    assert Faults.from_json({}) == Faults()
    assert not Faults().active
    assert Faults(down=True).active


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": 1.5}, "latency_ms"),
        ({"jitter_ms": True}, "jitter_ms"),
        ({"error_rate": 1.01}, "error_rate"),
        ({"error_rate": "half"}, "error_rate"),
        ({"error": "http_500"}, "error"),
        ({"lag_slots": 10**9}, "lag_slots"),
        ({"down": 1}, "down"),
        ({"timeout": 5}, "timeout"),
        ({"max_batch": -1}, "max_batch"),
        ({"max_batch": 10**6}, "max_batch"),
        ({"batch_refusal": "http_500"}, "batch_refusal"),
    ],
)
def test_bad_fields_are_refused_by_name(body: dict[str, Any], field: str) -> None:
    """Each refusal starts with the field it is about."""
    with pytest.raises(InvalidFaults, match=f"^{field}:"):
        Faults.from_json(body)


def test_a_body_that_is_not_an_object_is_refused() -> None:
    """Lists, strings and numbers are not fault descriptions."""
    with pytest.raises(InvalidFaults, match="JSON object"):
        Faults.from_json([1, 2])


def test_plans_follow_the_rate_and_stay_within_latency_plus_jitter() -> None:
    """Rate 0 never fails, rate 1 always does; delay is latency plus at most jitter."""
    rng = random.Random(3)
    never = [plan_request(Faults(latency_ms=100, jitter_ms=20), rng) for _ in range(200)]
    assert all(plan.error is None for plan in never)
    assert all(0.1 <= plan.delay_s <= 0.12 for plan in never)
    always = [
        plan_request(Faults(error_rate=1.0, error=FaultError.NODE_BEHIND), rng) for _ in range(50)
    ]
    assert {plan.error for plan in always} == {FaultError.NODE_BEHIND}


def test_the_same_seed_gives_the_same_plans() -> None:
    """Seeded dice make a fault run replayable."""
    faults = Faults(error_rate=0.5, jitter_ms=30)
    first = [plan_request(faults, random.Random(11)) for _ in range(1)]
    rng_a, rng_b = random.Random(11), random.Random(11)
    assert [plan_request(faults, rng_a) for _ in range(30)] == [
        plan_request(faults, rng_b) for _ in range(30)
    ]
    assert first[0] == plan_request(faults, random.Random(11))


def test_http_errors_know_their_status() -> None:
    """http_NNN errors carry NNN; the others are not HTTP statuses."""
    assert [error.http_status for error in FaultError] == [429, 502, 503, 504, None, None]


def test_drop_notifications_is_a_share_from_0_to_1() -> None:
    """The PubSub drop rate is checked like error_rate, naming the field."""
    assert Faults.from_json({"drop_notifications": 0.25}).drop_notifications == 0.25
    for bad in (1.5, -0.1, True, "half"):
        with pytest.raises(InvalidFaults, match="drop_notifications"):
            Faults.from_json({"drop_notifications": bad})
