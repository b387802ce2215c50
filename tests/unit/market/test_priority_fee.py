"""Priority fee policies: a fixed price, or a capped nearest-rank percentile."""

from __future__ import annotations

import pytest

from market import (
    FixedPriorityFee,
    InvalidFeePolicy,
    MarketError,
    NumberOutOfRange,
    PercentilePriorityFee,
)


def test_a_fixed_fee_ignores_the_cluster() -> None:
    """FixedPriorityFee pays its price whatever recent fees were."""
    policy = FixedPriorityFee(1_234)
    assert policy.micro_lamports_per_unit([]) == 1_234
    assert policy.micro_lamports_per_unit([10**9]) == 1_234


def test_a_percentile_is_the_nearest_ranked_observed_fee() -> None:
    """p50 of 1..4 is 2, p75 is 3, p100 is 4, p1 is 1: always an observed value."""
    fees = [4, 1, 3, 2]
    answers = [
        PercentilePriorityFee(p, cap_micro_lamports=100).micro_lamports_per_unit(fees)
        for p in (50, 75, 100, 1)
    ]
    assert answers == [2, 3, 4, 1]


def test_the_cap_and_floor_bound_the_percentile() -> None:
    """A spike is capped; a quiet cluster pays at least the floor; no data pays the floor."""
    policy = PercentilePriorityFee(90, cap_micro_lamports=5_000, floor_micro_lamports=100)
    assert policy.micro_lamports_per_unit([10**7] * 10) == 5_000
    assert policy.micro_lamports_per_unit([0] * 10) == 100
    assert policy.micro_lamports_per_unit([]) == 100


@pytest.mark.parametrize(
    ("arguments", "error", "field"),
    [
        ({"percentile": 0, "cap_micro_lamports": 1}, InvalidFeePolicy, "percentile"),
        ({"percentile": 100.5, "cap_micro_lamports": 1}, InvalidFeePolicy, "percentile"),
        ({"percentile": "50", "cap_micro_lamports": 1}, InvalidFeePolicy, "percentile"),
        ({"percentile": 50, "cap_micro_lamports": -1}, NumberOutOfRange, "cap_micro_lamports"),
        (
            {"percentile": 50, "cap_micro_lamports": 1, "floor_micro_lamports": 2},
            InvalidFeePolicy,
            "floor_micro_lamports",
        ),
    ],
)
def test_a_bad_percentile_policy_is_refused_by_name(
    arguments: dict[str, object], error: type[MarketError], field: str
) -> None:
    """Out-of-range percentiles, negative caps and a floor above the cap name the field."""
    with pytest.raises(error) as refused:
        # Wrong types are the point of some cases: the constructor must refuse them.
        PercentilePriorityFee(**arguments)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_a_negative_fixed_fee_is_refused() -> None:
    """A fixed fee must be a u64."""
    with pytest.raises(NumberOutOfRange) as refused:
        FixedPriorityFee(-1)
    assert refused.value.field == "micro_lamports"
