"""Values a sane operator never sets and a typo or a unit mix-up does are refused
before anything runs, naming the key (issue 15, "Configuration refused")."""

from __future__ import annotations

from typing import Any

import pytest

from crank_node.node.settings import InvalidSettings
from crank_node.node.settings_layers import load_settings


def problems(env: dict[str, str] | None = None, **flags: Any) -> str:
    with pytest.raises(InvalidSettings) as caught:
        load_settings(environ=env or {}, flags=flags)
    return str(caught.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lease_ttl_ms", 10**20),
        ("settlement_claim_ttl_ms", 10**20),
        ("settlement_status_interval_ms", 10**9),
        ("shutdown_timeout_ms", 10**17),
        ("polling_interval_ms", 10**12),
        ("intake_wakeup_ms", 10**9),
        ("rpc_attempt_timeout_ms", 10**15),
        ("max_concurrent_matches", 10**12),
        ("priority_fee_micro_lamports", 2**64),
    ],
)
def test_an_absurd_value_is_refused_naming_its_key(key: str, value: int) -> None:
    """Each is refused with the setting's own key in the message (not an inner name)."""
    message = problems(**{key: value})
    assert f"{key} = {value}" in message
    assert "less than or equal" in message


def test_a_fixed_fee_that_would_cost_more_than_the_cap_per_settlement_is_refused() -> None:
    """1e12 micro-lamports per unit is 40 SOL a settlement at 40k units: refused, and the
    message names the cap that would have to be raised on purpose."""
    message = problems(priority_fee_micro_lamports=10**12)
    assert "priority_fee_micro_lamports" in message
    assert "priority_fee_max_lamports" in message


def test_raising_the_cap_on_purpose_allows_a_high_fee() -> None:
    """The operator who spells out a higher per-settlement cap gets the fee they asked for."""
    settings = load_settings(
        environ={}, flags={"priority_fee_micro_lamports": 10**8, "priority_fee_max_lamports": 10**7}
    )
    assert settings.priority_fee_micro_lamports == 10**8


def test_a_percentile_cap_above_the_per_settlement_cap_is_refused() -> None:
    """The percentile policy's own cap must fit under the lamport cap too."""
    message = problems(priority_fee_percentile=75, priority_fee_cap_micro_lamports=10**11)
    assert "priority_fee_cap_micro_lamports" in message


def test_an_empty_rpc_url_list_is_refused_not_replaced_by_the_default() -> None:
    """CRANK_RPC_URLS set to nothing (a template that expanded to empty) is an error:
    falling back to 127.0.0.1:8899 would point a mainnet node at nothing."""
    assert "CRANK_RPC_URLS" in problems({"CRANK_RPC_URLS": " , "})
    assert "CRANK_RPC_URLS" in problems({"CRANK_RPC_URLS": ""})


def test_an_unknown_crank_variable_is_named_with_the_closest_key() -> None:
    """A typo in an environment variable's name is refused, with a suggestion."""
    message = problems({"CRANK_LEASE_TTL": "3000"})
    assert "CRANK_LEASE_TTL" in message and "CRANK_LEASE_TTL_MS" in message


def test_variables_of_the_test_and_crash_hooks_are_not_settings_and_pass() -> None:
    """CRANK_TEST_PG_URL and CRANK_CRASH_AT belong to the tests' tooling, not the node."""
    load_settings(environ={"CRANK_TEST_PG_URL": "x", "CRANK_CRASH_AT": "y"}, flags={})


def test_error_threshold_and_pause_duration_drive_the_rpc_circuit_breaker() -> None:
    """CRANK_ERROR_THRESHOLD is the consecutive failures that open an endpoint's breaker,
    CRANK_PAUSE_DURATION_MS the open breaker's wait before it half-opens: the names
    operators of cranks use, read by the router (they were parsed and read by nothing)."""
    built = load_settings(
        environ={"CRANK_ERROR_THRESHOLD": "3", "CRANK_PAUSE_DURATION_MS": "1500"}, flags={}
    ).rpc_router_config()
    assert (built.failure_threshold, built.breaker_reset_s) == (3, 1.5)


def test_the_status_interval_reaches_the_settlement_actor_and_too_short_is_refused() -> None:
    """settlement_status_interval_ms is what SettlementActor's status timer runs at
    (200 ms unless set); under 20 ms (a busy loop of RPC rounds) is refused by name."""
    assert load_settings(environ={}, flags={}).settlement_settings().status_interval_s == 0.2
    chosen = load_settings(environ={}, flags={"settlement_status_interval_ms": 100})
    assert chosen.settlement_settings().status_interval_s == 0.1
    message = problems(settlement_status_interval_ms=5)
    assert "settlement_status_interval_ms = 5" in message
    assert "greater than or equal to 20" in message


def test_a_negative_intake_wakeup_is_refused_and_zero_turns_wakeups_off() -> None:
    """intake_wakeup_ms: 0 is allowed (every order waits for the poll), below it is not."""
    assert load_settings(environ={}, flags={}).intake_wakeup_ms == 250
    assert load_settings(environ={"CRANK_INTAKE_WAKEUP_MS": "0"}, flags={}).intake_wakeup_ms == 0
    message = problems(intake_wakeup_ms=-1)
    assert "intake_wakeup_ms = -1" in message
    assert "greater than or equal to 0" in message
