"""What SettlementActor pays per settlement, per market: the priority price and the
compute-unit limit, and what a preflight refusal proves.

* **Price.** The fee policy (fixed, or a percentile with floor and cap) applied to
  ``getRecentPrioritizationFees`` asked with the accounts the market's settlements
  write (both legs' token accounts), refreshed on a timer at low priority; then
  the hard per-settlement cap in lamports (``market.cap_price``), which binds
  whatever a fee spike says (logged ``settlement.fee_cap_bound``, counted).
* **Limit.** ``simulateTransaction`` of the market's settlement shape (a real
  claimed fill, limit 1.4M, price 0), once per market and again after an attempt
  ran out of units; the limit is what it consumed plus a margin
  (``market.compute_unit_limit_for``). Until known: the configured default.
* **Preflight.** :func:`preflight_doom` says whether a ``sendTransaction``
  refused by preflight proves the settlement can never succeed (a leg refused by
  the token program: insufficient funds, delegate revoked, account frozen). It
  proves nothing about the chain (a refused send is not there; another endpoint
  may have taken the same bytes), so the actor only stops resending, and fails
  the settlement once the protocol finds every attempt dead.

No I/O here: the actor asks and hands the answers in.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

import market as domain
from actors.rpc.messages import RpcFailure, RpcOutcome, RpcSuccess
from actors.settlement.protocol import (
    BASE_LEG_INDEX,
    QUOTE_LEG_INDEX,
    describe_failure,
    failed_leg,
)

__all__ = [
    "MAX_FEE_ACCOUNTS",
    "PREFLIGHT_FAILURE",
    "Doomed",
    "FeeDesk",
    "MarketFees",
    "preflight_doom",
    "simulation_params",
    "writable_token_accounts",
]

MAX_FEE_ACCOUNTS = 128  # getRecentPrioritizationFees' limit
PREFLIGHT_FAILURE = -32002  # sendTransaction: "Transaction simulation failed"
# SPL Token errors on a leg that no resend can change: InsufficientFunds,
# OwnerMismatch (the delegate was revoked or changed), AccountFrozen.
_HOPELESS_TOKEN_ERRORS = frozenset({1, 4, 17})


@dataclass
class MarketFees:
    """One market's fee state (also what /status and /metrics show of it)."""

    recent_fees: list[int] = field(default_factory=list)
    fee_accounts: int = 0  # accounts the last recent-fees question named
    price_micro_lamports: int | None = None  # the last price bid (after the cap)
    wanted_micro_lamports: int | None = None  # what the policy wanted, before the cap
    compute_unit_limit: int | None = None  # from simulation; None: the default is used
    units_simulated: int | None = None
    simulating: bool = False
    fees_pending: bool = False  # the first recent-fees question is not answered yet
    simulations: int = 0
    cap_bound: int = 0  # attempts whose price the hard cap lowered
    # Raised after an attempt ran out of units: never ask for less again (a
    # simulation that underestimates cannot loop).
    least_limit: int = 0


@dataclass(frozen=True)
class Doomed:
    """A preflight refusal that proves the settlement cannot succeed as it stands."""

    reason: str
    leg: str | None


class FeeDesk:
    """Per-market prices and limits for SettlementActor (module docstring)."""

    def __init__(
        self,
        policy: domain.PriorityFeePolicy,
        *,
        default_limit: int,
        max_priority_fee_lamports: int | None,
        margin_percent: int,
        margin_units: int,
        simulate: bool,
    ) -> None:
        self.policy = policy
        self.default_limit = default_limit
        self.max_priority_fee_lamports = max_priority_fee_lamports
        self.margin_percent = margin_percent
        self.margin_units = margin_units
        self.simulate = simulate
        self.markets: dict[str, MarketFees] = {}

    def of(self, market_id: str) -> MarketFees:
        return self.markets.setdefault(market_id, MarketFees())

    def limit_for(self, market_id: str) -> int:
        fees = self.of(market_id)
        return max(fees.compute_unit_limit or self.default_limit, fees.least_limit)

    def price_for(self, market_id: str, limit: int) -> int:
        """The price of the market's next attempt at ``limit`` units, capped."""
        fees = self.of(market_id)
        capped = domain.cap_price(
            self.policy.micro_lamports_per_unit(fees.recent_fees),
            limit,
            self.max_priority_fee_lamports,
        )
        fees.price_micro_lamports, fees.wanted_micro_lamports = capped.micro_lamports, capped.wanted
        if capped.bound:
            fees.cap_bound += 1
            logger.bind(
                action="settlement.fee_cap_bound",
                market_id=market_id,
                wanted=capped.wanted,
                paid=capped.micro_lamports,
                compute_unit_limit=limit,
                max_lamports=self.max_priority_fee_lamports,
            ).warning(
                f"market {market_id}: the fee policy wanted {capped.wanted} micro-lamports per "
                f"unit; the hard cap of {self.max_priority_fee_lamports} lamports per settlement "
                f"at {limit} units allows {capped.micro_lamports}"
            )
        return capped.micro_lamports

    @property
    def cap_bound(self) -> int:
        return sum(fees.cap_bound for fees in self.markets.values())

    # -- recent fees ---------------------------------------------------------------------

    def recent_fees_answered(self, market_id: str, accounts: int, outcome: RpcOutcome) -> None:
        self.of(market_id).fees_pending = False
        result = outcome.result if isinstance(outcome, RpcSuccess) else None
        if not isinstance(result, list):
            logger.bind(action="settlement.fees_failed", market_id=market_id).info(
                f"recent prioritization fees of {market_id} unread, kept the last: {outcome!r:.200}"
            )
            return
        fees = self.of(market_id)
        fees.recent_fees = [
            int(entry["prioritizationFee"])
            for entry in result
            if isinstance(entry, dict) and type(entry.get("prioritizationFee")) is int
        ]
        fees.fee_accounts = accounts

    # -- compute units ---------------------------------------------------------------------

    def wants_simulation(self, market_id: str) -> bool:
        fees = self.of(market_id)
        return self.simulate and fees.compute_unit_limit is None and not fees.simulating

    def simulation_answered(self, market_id: str, outcome: RpcOutcome) -> None:
        fees = self.of(market_id)
        fees.simulating = False
        value = (
            outcome.result.get("value")
            if isinstance(outcome, RpcSuccess) and isinstance(outcome.result, dict)
            else None
        )
        units = value.get("unitsConsumed") if isinstance(value, dict) else None
        if not isinstance(value, dict) or value.get("err") is not None or type(units) is not int:
            logger.bind(action="settlement.simulation_failed", market_id=market_id).info(
                f"simulating a settlement of {market_id} told no limit, the default "
                f"{self.default_limit} stays: {outcome!r:.300}"
            )
            return
        limit = domain.compute_unit_limit_for(
            units, margin_percent=self.margin_percent, margin_units=self.margin_units
        )
        fees.units_simulated, fees.compute_unit_limit = units, limit
        fees.simulations += 1
        logger.bind(
            action="settlement.compute_units_simulated",
            market_id=market_id,
            units_consumed=units,
            compute_unit_limit=limit,
        ).info(f"market {market_id}: a settlement uses {units} units; limit {limit}")

    def out_of_compute(self, market_id: str, failed_limit: int) -> None:
        """An attempt ran out of units at ``failed_limit``: ask for at least twice that
        from now on, and simulate again (unless the limit known now is already above
        it: the attempt was made before the simulation answered)."""
        fees = self.of(market_id)
        logger.bind(
            action="settlement.out_of_compute", market_id=market_id, compute_unit_limit=failed_limit
        ).warning(f"an attempt of {market_id} ran out of compute units at limit {failed_limit}")
        fees.least_limit = max(
            fees.least_limit, min(2 * failed_limit, domain.MAX_COMPUTE_UNIT_LIMIT)
        )
        if (fees.compute_unit_limit or 0) <= failed_limit:
            fees.compute_unit_limit = None


def writable_token_accounts(fills: Iterable[domain.Fill]) -> list[str]:
    """The token accounts the settlements of ``fills`` write (both legs, both sides),
    deduplicated in order, at most :data:`MAX_FEE_ACCOUNTS`."""
    seen: dict[str, None] = {}
    for fill in fills:
        for account in (
            fill.seller_pay_account,
            fill.buyer_receive_account,
            fill.buyer_pay_account,
            fill.seller_receive_account,
        ):
            seen.setdefault(str(account), None)
    return list(seen)[:MAX_FEE_ACCOUNTS]


def simulation_params(raw_transaction: bytes) -> list[Any]:
    """``simulateTransaction`` params for a settlement's shape: no signature check and
    the node's own recent blockhash, so only the programs' work is measured."""
    encoded = base64.b64encode(raw_transaction).decode("ascii")
    config = {
        "encoding": "base64",
        "sigVerify": False,
        "replaceRecentBlockhash": True,
        "commitment": "confirmed",
    }
    return [encoded, config]


def preflight_doom(outcome: RpcOutcome, *, has_marker: bool = True) -> Doomed | None:
    """A :class:`Doomed` when ``outcome`` is a preflight refusal in which the token
    program refused a leg with an error no resend can change; else None (a refusal
    for a stale blockhash, a lagging node, the fee payer's balance... proves nothing
    about the settlement)."""
    if not isinstance(outcome, RpcFailure) or outcome.code != PREFLIGHT_FAILURE:
        return None
    err = outcome.data.get("err") if isinstance(outcome.data, dict) else None
    detail = err.get("InstructionError") if isinstance(err, dict) else None
    if not isinstance(detail, list) or len(detail) != 2:
        return None
    index, error = detail
    custom = error.get("Custom") if isinstance(error, dict) else None
    legs = (
        (BASE_LEG_INDEX, QUOTE_LEG_INDEX)
        if has_marker
        else (BASE_LEG_INDEX - 1, QUOTE_LEG_INDEX - 1)
    )
    if index not in legs or custom not in _HOPELESS_TOKEN_ERRORS:
        return None
    reason = f"refused at preflight: {describe_failure(err, has_marker=has_marker)}"
    return Doomed(reason, failed_leg(err, has_marker=has_marker))
