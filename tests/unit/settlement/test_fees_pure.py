"""The pure fee and compute-unit rules (issue 16): the hard cap, the simulated limit's
margin, the fee read from a transaction's bytes, out-of-compute landings, preflight
refusals, and /health's fee-payer judgement."""

from __future__ import annotations

from actors.rpc.messages import ErrorKind, RpcFailure
from actors.settlement.fees import preflight_doom
from actors.settlement.protocol import AttemptView, Expire, SignatureStatus, decide
from crank_node.node.node import judge_fee_payers
from market import cap_price, compute_unit_limit_for, priority_fee_lamports


def test_the_hard_cap_lowers_a_price_whose_fee_would_pass_it_and_says_so() -> None:
    """10M micro-lamports at 2,189 units costs 21,890 lamports; a 50-lamport cap lowers
    the price to 22,841 (50 lamports at that limit) and reports that it bound."""
    capped = cap_price(10_000_000, 2_189, 50)
    assert (capped.micro_lamports, capped.wanted, capped.bound) == (22_841, 10_000_000, True)
    assert priority_fee_lamports(capped.micro_lamports, 2_189) <= 50
    assert cap_price(1_000, 2_189, 50).bound is False


def test_the_limit_is_the_larger_of_the_two_margins_over_the_units_used() -> None:
    """1,189 units: +20% is 1,427, +1,000 is 2,189: the limit is 2,189; at 100k units the
    percentage wins (120,000); never above 1.4M."""
    assert compute_unit_limit_for(1_189, margin_percent=20, margin_units=1_000) == 2_189
    assert compute_unit_limit_for(100_000, margin_percent=20, margin_units=1_000) == 120_000
    assert compute_unit_limit_for(1_300_000, margin_percent=20, margin_units=0) == 1_400_000


def test_an_attempt_out_of_compute_units_is_dead_not_a_failed_settlement() -> None:
    """ProgramFailedToComplete (a BPF meter exhausted) on the only attempt: Expire with
    it in out_of_compute, so a new attempt follows; a token error still fails."""
    attempt = AttemptView("sig", "sent", 100)
    spent = SignatureStatus(5, "confirmed", {"InstructionError": [4, "ProgramFailedToComplete"]})
    assert decide([attempt], {"sig": spent}, None) == Expire((), ("sig",))
    refused = SignatureStatus(5, "confirmed", {"InstructionError": [3, {"Custom": 1}]})
    assert type(decide([attempt], {"sig": refused}, None)).__name__ == "LandedFailed"


def test_only_a_leg_refused_by_the_token_program_at_preflight_is_hopeless() -> None:
    """OwnerMismatch on the base leg at preflight dooms the settlement; a stale blockhash
    or an out-of-compute preflight proves nothing."""

    def refusal(err: object) -> RpcFailure:
        return RpcFailure(
            ErrorKind.RPC_ERROR, "simulation failed", 1, 0.0, code=-32002, data={"err": err}
        )

    doom = preflight_doom(refusal({"InstructionError": [3, {"Custom": 4}]}))
    assert doom is not None and doom.leg == "base"
    assert preflight_doom(refusal("BlockhashNotFound")) is None
    assert preflight_doom(refusal({"InstructionError": [4, "ProgramFailedToComplete"]})) is None


def test_a_fee_payer_that_cannot_pay_the_next_settlements_makes_the_node_unhealthy() -> None:
    """Below the minimum: unhealthy; below the floor (or unknown): degraded; else healthy."""
    judge = lambda lamports: judge_fee_payers(  # noqa: E731
        {"payer": lamports}, floor_lamports=100_000_000, min_lamports=10_000_000
    )[0]
    assert (judge(5_000_000), judge(50_000_000), judge(None), judge(10**9)) == (
        "unhealthy",
        "degraded",
        "degraded",
        "healthy",
    )
