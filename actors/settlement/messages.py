"""What SettlementActor answers and is told, besides the pipeline's messages.

Its own timer ticks and I/O replies are private to actors/settlement/actor.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from solders.keypair import Keypair

from market import FixedPriorityFee, PriorityFeePolicy

PREFLIGHT_MODES = ("first_send", "always", "never")

__all__ = [
    "PREFLIGHT_MODES",
    "Drain",
    "GetSettlementState",
    "SettlementSettings",
    "SettlementState",
    "signer_map",
]


@dataclass(frozen=True)
class SettlementSettings:
    """How SettlementActor paces itself.

    ``claim_ttl_s``: how long a claim lasts without renewal (renewed every
    third of it); another node takes a settlement over once its claim expires.
    ``max_in_flight``: claimed settlements at most; at that many it tells the
    match sink it is full, and not full again at half of it.
    """

    claim_ttl_s: float = 30.0
    claim_batch: int = 128
    max_in_flight: int = 1024
    poll_interval_s: float = 1.0  # look for pending settlements nobody claimed
    status_interval_s: float = 0.2  # ask the chain about live attempts
    resend_interval_s: float = 2.0  # resend a live attempt's bytes
    fee_refresh_s: float = 10.0  # getRecentPrioritizationFees, for percentile fees
    # A frozen, immutable policy: one shared default instance is safe.
    fee_policy: PriorityFeePolicy = FixedPriorityFee(1_000)  # noqa: RUF009
    compute_unit_limit: int = 40_000  # the default, until simulation says better
    request_deadline_s: float = 5.0
    # The most priority fee one attempt may cost (limit x price), whatever the policy
    # and the recent fees say; None: no cap.
    max_priority_fee_lamports: int | None = None
    simulate_compute_units: bool = True  # the limit from simulateTransaction, per market
    compute_unit_margin_percent: int = 20
    compute_unit_margin_units: int = 1_000
    # first_send: preflight on an attempt's first send only; always; never.
    preflight: str = "first_send"
    # Cut from the chain this long (no RPC endpoint answers): send nothing more, and once
    # no send can still be in the router's hands, give every claim back for nodes that can
    # settle (actors.rpc.reach); claim none until an endpoint answers. None: never.
    chain_handover_s: float | None = None
    # ws(s):// URLs of PubSub endpoints whose slotSubscribe paces the status rounds
    # (actors.rpc.slot_feed): a round as each slot arrives, the timer only while the
    # feed is silent. One is followed at a time, the next after it fails. Empty: the
    # timer alone.
    slot_feed_urls: tuple[str, ...] = ()
    # The feed counts as silent once no slot came for this long: the timer takes over.
    slot_feed_stale_s: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "claim_ttl_s",
            "poll_interval_s",
            "status_interval_s",
            "resend_interval_s",
            "fee_refresh_s",
            "request_deadline_s",
            "slot_feed_stale_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        for name in ("claim_batch", "max_in_flight", "compute_unit_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("compute_unit_margin_percent", "compute_unit_margin_units"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        cap = self.max_priority_fee_lamports
        if cap is not None and (not isinstance(cap, int) or cap < 0):
            raise ValueError(f"max_priority_fee_lamports must be an integer >= 0, got {cap!r}")
        if self.chain_handover_s is not None and not self.chain_handover_s > 0:
            raise ValueError(f"chain_handover_s must be positive, got {self.chain_handover_s}")
        if self.preflight not in PREFLIGHT_MODES:
            raise ValueError(
                f"preflight must be one of {', '.join(PREFLIGHT_MODES)}, got {self.preflight!r}"
            )


@dataclass(frozen=True)
class GetSettlementState:
    """Ask: a :class:`SettlementState` (for ``/status`` and tests)."""


@dataclass(frozen=True)
class SettlementState:
    in_flight: int  # claimed and not yet finished here
    building: int  # waiting for a blockhash to make an attempt
    live_attempts: int  # attempts sent (or to send) and not yet resolved
    confirmed: int  # settlements this instance confirmed
    failed: int  # settlements this instance failed (landed with an error)
    attempts_made: int
    expired_attempts: int
    resends: int
    claims_lost: int
    block_height: int | None
    draining: bool
    full: bool
    refused: int = 0  # settlements refused as unauthorized (market.authorization), unsigned
    fee_cap_bound: int = 0  # attempts whose price the hard per-settlement cap lowered
    preflight_refused: int = 0  # sends refused at preflight as hopeless
    # Per market: price chosen, compute-unit limit, units simulated (fees.MarketFees).
    fees: dict[str, Any] = field(default_factory=dict)
    # The slot feed (actors.rpc.slot_feed.SlotFeedState as a dict), None if there is none.
    slot_feed: dict[str, Any] | None = None
    status_rounds: int = 0  # rounds of questions about attempts asked
    rounds_on_slots: int = 0  # of them, started by a slot from the feed
    slot_cues: int = 0  # the feed's cues handled (one waits at a time: a flood is a few)


@dataclass(frozen=True)
class Drain:
    """Stop claiming; ``reply(in_flight)`` once nothing is in flight (called with 0),
    from the actor's thread. What is still in flight when the node stops stays
    in the database, claimed until the claim expires or released on stop."""

    reply: Callable[[int], None]


def signer_map(*keypairs: Keypair) -> dict[str, Keypair]:
    """Keypairs by public key (base58), as SettlementActor takes its signers."""
    return {str(keypair.pubkey()): keypair for keypair in keypairs}
