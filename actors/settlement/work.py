"""One claimed settlement as SettlementActor holds it, and the writes that finish it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from loguru import logger
from solders.hash import Hash
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import market as domain
import storage
from actors.blockhash import FreshBlockhash
from actors.settlement.protocol import (
    UNRESOLVED,
    Decision,
    Expire,
    Landed,
    LandedFailed,
    ObservedHeight,
    describe_failure,
    failed_leg,
)
from supervision import InputKey

__all__ = [
    "AttemptsExpired",
    "Finished",
    "SettlementWork",
    "confirmed",
    "draft_attempt",
    "fee_of",
    "finish_decision",
]


@dataclass
class SettlementWork:
    """A settlement this actor holds the claim of.

    ``needs_check``: the chain must be asked about every recorded signature
    before anything is decided (set on a claim with attempts, i.e. recovery,
    and after a write whose outcome is unsure).
    """

    claim: storage.Claim
    valid_until_s: float  # actor clock: past this the claim is not trusted to send
    fill: domain.Fill
    market: domain.Market
    attempts: list[storage.AttemptRecord]
    sent_at_s: dict[str, float] = field(default_factory=dict)
    needs_check: bool = False
    # The settlement's stored trace (its taker order's): the actor's messages about this
    # settlement alone run under it (supervision.tracing.continued), on any node.
    trace_id: str | None = None

    def __post_init__(self) -> None:
        self.needs_check = bool(self.attempts)

    @property
    def id(self) -> str:
        return str(self.claim.row_id)

    @property
    def input_key(self) -> InputKey:
        """This settlement as the input an actor failure names (actors.poison)."""
        return InputKey("settlement", self.id, self.fill.market_id)

    @property
    def needs_attempt(self) -> bool:
        """No attempt that could still land, and nothing left to ask the chain first."""
        # A loop, not all()/any() over a generator (~100 ns against ~400 for one attempt):
        # asked of every work held, several times a slot, it was ~3% of a node's CPU at
        # 300 fills/s (py-spy).
        if self.needs_check:
            return False
        for attempt in self.attempts:  # noqa: SIM110  (see above)
            if attempt.state in UNRESOLVED:
                return False
        return True

    def live_signatures(self, block_height: int | None) -> list[str]:
        """Unresolved attempts whose blockhash is still valid at ``block_height``
        (all unresolved ones when it is unknown): the ones worth resending."""
        return [
            attempt.signature
            for attempt in self.attempts
            if attempt.state in UNRESOLVED
            and (block_height is None or block_height <= attempt.last_valid_block_height)
        ]

    def signatures_to_ask(self) -> list[str]:
        """Every signature when checking (recovery: history searched, expired ones
        too), else only the unresolved ones."""
        if self.needs_check:
            return [attempt.signature for attempt in self.attempts]
        return [attempt.signature for attempt in self.attempts if attempt.state in UNRESOLVED]

    @property
    def marker_address(self) -> str | None:
        """The marker its attempts create (every attempt of a fill creates the same
        one); None when no attempt carries one (none yet, or legacy rows)."""
        return next((a.marker_address for a in self.attempts if a.marker_address), None)

    def some_attempt_past(self, height: ObservedHeight | None) -> bool:
        """Whether an unresolved attempt is past its last valid block height at ``height``."""
        return height is not None and any(
            a.state in UNRESOLVED and height.block_height > a.last_valid_block_height
            for a in self.attempts
        )

    def signature_set(self) -> set[str]:
        return {attempt.signature for attempt in self.attempts}

    def raw(self, signature: str) -> bytes:
        return next(a.raw_transaction for a in self.attempts if a.signature == signature)

    def mark(self, signatures: tuple[str, ...], state: str) -> None:
        self.attempts = [
            _with_state(attempt, state) if attempt.signature in signatures else attempt
            for attempt in self.attempts
        ]


def _with_state(attempt: storage.AttemptRecord, state: str) -> storage.AttemptRecord:
    return storage.AttemptRecord(
        attempt.settlement_id,
        attempt.attempt_number,
        attempt.signature,
        attempt.raw_transaction,
        attempt.blockhash,
        attempt.last_valid_block_height,
        attempt.claim_token,
        state,
        attempt.marker_address,
    )


@dataclass(frozen=True)
class Finished:
    """A settlement this actor finished: ``outcome`` confirmed or failed."""

    settlement_id: str
    fill: domain.Fill
    outcome: str
    signature: str | None  # None: landed (the marker says so), signature unknown
    slot: int | None
    reason: str | None = None
    leg: str | None = None  # which leg was refused, for a failure
    # Since the fill was written (its settlement's created_at, by this host's clock).
    fill_age_s: float | None = None
    fee: domain.TransactionFee | None = None  # what the landed attempt paid (None: unknown)

    def mark_orders(self, engine: Engine) -> None:
        """A failed settlement: the order whose pay account refused is set aside as
        unfunded (OrderMonitor puts it back in play once it is funded again)."""
        order_ids = {
            "base": (self.fill.sell_order_id,),
            "quote": (self.fill.buy_order_id,),
        }.get(self.leg or "", ())
        for order_id in order_ids:
            try:
                changed = storage.mark_order_unfunded(engine, order_id)
            except storage.StorageError as error:
                changed = False
                logger.bind(action="settlement.mark_order_failed", order_id=order_id).warning(
                    f"could not mark order {order_id} unfunded: {error}"
                )
            logger.bind(
                action="settlement.order_unfunded", order_id=order_id, changed=changed
            ).info(f"order {order_id} set aside: its settlement {self.settlement_id} failed")


@dataclass(frozen=True)
class AttemptsExpired:
    """Attempts of a settlement found provably dead (a new attempt follows).
    ``out_of_compute``: those that landed failed out of compute units, which paid
    ``fee_lamports`` between them (market ``market_id``)."""

    settlement_id: str
    signatures: tuple[str, ...]
    out_of_compute: tuple[str, ...] = ()
    fee_lamports: int = 0
    market_id: str = ""


def finish_decision(
    queue: storage.ClaimQueue, work: SettlementWork, decision: Decision, note: str | None = None
) -> Finished | None:
    """Write what ``decision`` says (Expire, Landed, LandedFailed; Wait writes nothing).
    ``Landed`` without a signature (the marker proves it landed, history is gone) is
    recorded confirmed with ``confirmed_signature`` NULL and ``note`` in ``last_error``.

    Returns the finished settlement, or None while it goes on. Raises ClaimLost
    or another StorageError; nothing is half written (each is one transaction,
    except expiring several attempts, which is safe to repeat).
    """
    if isinstance(decision, Expire):
        # Landed failed out of compute units: dead, nothing moved. Recorded "expired"
        # (dead, a new attempt follows), the state storage requires of every earlier
        # attempt before a new one; the AttemptsExpired event says why.
        for signature in decision.signatures + decision.out_of_compute:
            storage.mark_attempt(queue, work.claim, signature, "expired")
        work.mark(decision.signatures + decision.out_of_compute, "expired")
        if decision.signatures:
            logger.bind(
                action="settlement.attempts_expired",
                settlement_id=work.id,
                signatures=list(decision.signatures),
            ).info(f"settlement {work.id}: attempts provably dead; a new one follows")
        return None
    if isinstance(decision, Landed) and (decision.signature is None or decision.slot is None):
        note = note or "landed, signature unknown: history pruned"
        storage.confirm_settlement_unknown(queue, work.claim, note)
        return Finished(
            work.id, work.fill, "confirmed", None, None, note, fill_age_s=_age_s(work.claim)
        )
    if isinstance(decision, Landed):
        assert decision.signature is not None and decision.slot is not None  # handled above
        storage.confirm_settlement(queue, work.claim, decision.signature, decision.slot)
        return confirmed(work, decision)
    if isinstance(decision, LandedFailed):
        reason = describe_failure(decision.err, has_marker=decision.has_marker)
        storage.fail_settlement(
            queue, work.claim, reason, signature=decision.signature, slot=decision.slot
        )
        work.mark((decision.signature,), "failed")
        leg = failed_leg(decision.err, has_marker=decision.has_marker)
        return Finished(
            work.id,
            work.fill,
            "failed",
            decision.signature,
            decision.slot,
            reason,
            leg,
            _age_s(work.claim),
            fee_of(work, decision.signature),
        )
    return None


def confirmed(work: SettlementWork, decision: Landed) -> Finished:
    """``work`` after its confirmation was written: the attempt marked, the event."""
    assert decision.signature is not None
    work.mark((decision.signature,), "confirmed")
    return Finished(
        work.id,
        work.fill,
        "confirmed",
        decision.signature,
        decision.slot,
        fill_age_s=_age_s(work.claim),
        fee=fee_of(work, decision.signature),
    )


def fee_of(work: SettlementWork, signature: str) -> domain.TransactionFee | None:
    """What attempt ``signature`` of ``work`` paid when it landed, read from its bytes."""
    try:
        return domain.transaction_fee(work.raw(signature))
    except (StopIteration, ValueError) as error:
        logger.bind(action="settlement.fee_unknown", settlement_id=work.id).info(
            f"the fee of {signature} could not be read from its bytes: {error!r}"
        )
        return None


def _age_s(claim: storage.Claim) -> float | None:
    created_at = claim.sort_key[0] if claim.sort_key else None
    if not isinstance(created_at, datetime):
        return None
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)  # stored in UTC
    return max(0.0, time.time() - created_at.timestamp())


def draft_attempt(
    work: SettlementWork,
    signers: Mapping[str, Keypair],
    fresh: FreshBlockhash,
    price_micro_lamports: int,
    compute_unit_limit: int,
) -> storage.AttemptDraft:
    """Build and sign one attempt of ``work`` on ``fresh``'s blockhash, ready to be
    written ahead (SettlementActor's ``_draft``; tests draft as a dead node would)."""
    market = work.market
    transaction = domain.build_settlement_transaction(
        market,
        work.fill,
        fee_payer=signers[str(market.fee_payer)],
        settlement_authority=signers[str(market.settlement_authority)],
        recent_blockhash=Hash.from_string(fresh.blockhash),
        compute_unit_price_micro_lamports=price_micro_lamports,
        compute_unit_limit=compute_unit_limit,
    )
    return storage.AttemptDraft(
        work.claim,
        str(transaction.signature),
        transaction.raw_bytes,
        fresh.blockhash,
        fresh.last_valid_block_height,
        str(transaction.marker_address),
    )
