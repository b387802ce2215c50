"""FeeDesk (actors/settlement/fees.py), the pure per-market bookkeeping of prices and
compute-unit limits: simulated once per market, and again after an attempt ran out of
compute units; never asking for less than twice a limit that proved too low."""

from __future__ import annotations

from typing import Any

from actors.rpc.messages import ErrorKind, RpcFailure, RpcOutcome, RpcSuccess
from actors.settlement.fees import FeeDesk
from market import MAX_COMPUTE_UNIT_LIMIT, FixedPriorityFee

MARKET = "SOL-USDC"


def desk(simulate: bool = True, cap: int | None = None) -> FeeDesk:
    return FeeDesk(
        FixedPriorityFee(1_000),
        default_limit=40_000,
        max_priority_fee_lamports=cap,
        margin_percent=0,
        margin_units=0,
        simulate=simulate,
    )


def simulated(result: Any) -> RpcOutcome:
    return RpcSuccess(result, "endpoint-0", 10, 1, 0.01)


def consumed(units: int) -> RpcOutcome:
    return simulated({"context": {"slot": 10}, "value": {"err": None, "unitsConsumed": units}})


def test_a_market_is_simulated_once_and_its_limit_cached() -> None:
    """Until the answer: the default limit, one simulation in flight. After it, the
    simulated units (no margin here) and no further simulation."""
    fees = desk()
    assert fees.wants_simulation(MARKET) and fees.limit_for(MARKET) == 40_000
    fees.of(MARKET).simulating = True  # what the actor sets when it asks
    assert not fees.wants_simulation(MARKET)
    fees.simulation_answered(MARKET, consumed(1_189))
    assert fees.limit_for(MARKET) == 1_189 and not fees.wants_simulation(MARKET)
    assert fees.of(MARKET).simulations == 1


def test_an_attempt_out_of_compute_at_the_cached_limit_asks_for_a_new_simulation() -> None:
    """The cached limit proved too low: simulated again, and never less than twice the
    failed limit, even when the new simulation says less."""
    fees = desk()
    fees.simulation_answered(MARKET, consumed(1_189))

    fees.out_of_compute(MARKET, 1_189)

    assert fees.wants_simulation(MARKET)
    assert fees.of(MARKET).least_limit == 2_378
    fees.simulation_answered(MARKET, consumed(1_191))
    assert fees.of(MARKET).simulations == 2 and fees.of(MARKET).units_simulated == 1_191
    assert fees.limit_for(MARKET) == 2_378 and not fees.wants_simulation(MARKET)
    fees.simulation_answered(MARKET, consumed(5_000))
    assert fees.limit_for(MARKET) == 5_000


def test_an_attempt_out_of_compute_below_a_limit_known_since_keeps_that_limit() -> None:
    """The attempt was made at the default before the simulation answered a higher
    limit: nothing to simulate again, only the floor of twice the failed limit."""
    fees = desk()
    fees.simulation_answered(MARKET, consumed(3_000))
    fees.out_of_compute(MARKET, 600)
    assert not fees.wants_simulation(MARKET)
    assert fees.limit_for(MARKET) == 3_000 and fees.of(MARKET).least_limit == 1_200


def test_doubling_stops_at_the_largest_limit_a_transaction_may_ask() -> None:
    fees = desk()
    fees.out_of_compute(MARKET, 1_000_000)
    fees.out_of_compute(MARKET, MAX_COMPUTE_UNIT_LIMIT)
    assert fees.limit_for(MARKET) == MAX_COMPUTE_UNIT_LIMIT


def test_a_failed_or_odd_simulation_keeps_the_default_and_may_be_asked_again() -> None:
    """An RPC failure, a simulation that failed, or an answer without an integer
    unitsConsumed (a float, a bool, a string) tells no limit."""
    fees = desk()
    answers = [
        RpcFailure(ErrorKind.TIMEOUT, "deadline", 1, 1.0),
        simulated(
            {"value": {"err": {"InstructionError": [3, {"Custom": 1}]}, "unitsConsumed": 900}}
        ),
        simulated({"value": {"err": None, "unitsConsumed": 1_189.0}}),
        simulated({"value": {"err": None, "unitsConsumed": True}}),
        simulated({"value": {"err": None, "unitsConsumed": "1189"}}),
        simulated({"value": None}),
        simulated([]),
    ]
    for answer in answers:
        fees.of(MARKET).simulating = True
        fees.simulation_answered(MARKET, answer)
        assert fees.limit_for(MARKET) == 40_000 and fees.wants_simulation(MARKET)
    assert fees.of(MARKET).simulations == 0


def test_with_simulation_off_the_default_is_used_and_out_of_compute_still_doubles() -> None:
    fees = desk(simulate=False)
    assert not fees.wants_simulation(MARKET)
    fees.out_of_compute(MARKET, 40_000)
    assert not fees.wants_simulation(MARKET) and fees.limit_for(MARKET) == 80_000


def test_markets_are_independent() -> None:
    fees = desk()
    fees.simulation_answered(MARKET, consumed(1_189))
    fees.out_of_compute("OTHER", 40_000)
    assert fees.limit_for(MARKET) == 1_189 and fees.limit_for("OTHER") == 80_000


def test_the_hard_cap_lowers_the_price_at_the_limit_asked_and_counts_each_binding() -> None:
    """1,000 uL/CU at 40,000 units is 40 lamports: a cap of 20 allows 500 uL/CU; at the
    simulated 1,189 units the price fits and nothing is counted."""
    fees = desk(cap=20)
    assert fees.price_for(MARKET, 40_000) == 500
    assert fees.price_for(MARKET, 40_000) == 500
    assert fees.cap_bound == 2 and fees.of(MARKET).wanted_micro_lamports == 1_000
    assert fees.price_for(MARKET, 1_189) == 1_000
    assert fees.cap_bound == 2
