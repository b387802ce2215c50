"""The settlements one SettlementActor holds claims on: claiming, renewing, releasing.

Used from the actor's thread only (no locking). A claim is trusted locally
until ``valid_until_s`` on the actor's clock: its TTL, counted from just before
the claim (or renewal) statement, less a margin for clock drift between this
process and the database and for a slow write. Nothing is sent on a claim
past that, even before a renewal has found it lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from loguru import logger
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import market as domain
import storage
from actors.settlement.work import SettlementWork
from supervision import Clock

__all__ = ["ClaimedSettlements"]

TRUSTED_SHARE_OF_TTL = 0.8


class ClaimedSettlements:
    """Claimed settlements by id, and which settlement each attempt signature is of."""

    def __init__(
        self,
        engine: Engine,
        node_id: str,
        signers: Mapping[str, Keypair],
        *,
        claim_ttl_s: float,
        clock: Clock,
        db_time_offset_s: Callable[[], float],
    ) -> None:
        self._engine = engine
        self._node_id = node_id
        self.signers = dict(signers)
        self._ttl_s = claim_ttl_s
        self._clock = clock
        self._offset = db_time_offset_s
        self.works: dict[str, SettlementWork] = {}
        self._by_signature: dict[str, str] = {}
        self._markets: dict[str, domain.Market] = {}
        self._unsignable: set[str] = set()

    def __len__(self) -> int:
        return len(self.works)

    def __iter__(self) -> Iterator[SettlementWork]:
        return iter(list(self.works.values()))

    def queue(self) -> storage.ClaimQueue:
        return storage.settlement_queue(self._engine, self._node_id, clock_offset_s=self._offset())

    def claim(self, wanted: int) -> int:
        """Claim up to ``wanted`` settlements; the number of rows claimed (some may be
        released again at once: no fill, no market, or no keypair to sign with).
        Raises StorageError."""
        taken_at_s = self._clock.monotonic()
        claims = self.queue().claim(wanted, self._ttl_s)
        if not claims:
            return 0
        ids = [str(claim.row_id) for claim in claims]
        fills = storage.get_fills(self._engine, ids)
        attempts = storage.attempts_by_settlement(self._engine, ids)
        for claim, settlement_id in zip(claims, ids, strict=True):
            fill = fills.get(settlement_id)
            market = self._market(fill.market_id) if fill is not None else None
            if fill is None or market is None or not self._can_sign(market, settlement_id):
                self._release(claim, "its fill or market is missing, or no signer for it")
                continue
            work = SettlementWork(
                claim, taken_at_s + self._trusted_s(), fill, market, attempts[settlement_id]
            )
            self.works[settlement_id] = work
            for attempt in work.attempts:
                self._by_signature[attempt.signature] = settlement_id
            if work.attempts:
                logger.bind(
                    action="settlement.recovering",
                    settlement_id=settlement_id,
                    attempts=len(work.attempts),
                ).info(f"settlement {settlement_id} has attempts: asking the chain first")
        return len(claims)

    def renew(self) -> list[SettlementWork]:
        """Renew every claim, a chunk of them a statement; the settlements whose claim
        was lost (forgotten here). A chunk that could not be written is logged and
        retried next time (its claims are trusted only until their own deadline)."""
        works = {work.claim.row_id: work for work in self}
        if not works:
            return []
        renewed_at_s = self._clock.monotonic()
        try:
            renewed, lost_claims = self.queue().renew_many(
                [work.claim for work in works.values()], self._ttl_s
            )
        except storage.StorageError as error:
            logger.bind(action="settlement.renew_failed", claims=len(works)).warning(
                f"renewing {len(works)} claims failed, will retry: {error}"
            )
            return []
        for claim in renewed:
            work = works[claim.row_id]
            work.claim = claim
            work.valid_until_s = renewed_at_s + self._trusted_s()
        lost = [works[claim.row_id] for claim in lost_claims]
        for work in lost:
            self.forget(work)
        return lost

    def release_all(self) -> None:
        """Give every claim back (on stop), so that recovery need not wait for expiry."""
        if not self.works:
            return
        try:
            released = self.queue().release_many([work.claim for work in self])
        except storage.StorageError as error:
            logger.bind(action="settlement.release_failed", claims=len(self.works)).warning(
                f"could not release {len(self.works)} claims; they expire on their own: {error}"
            )
            return
        logger.bind(action="settlement.claims_released", released=released).info(
            f"{released} of {len(self.works)} settlements in flight released for recovery"
        )

    def held(self, work: SettlementWork) -> bool:
        """Whether ``work``'s claim is still trusted to act on (module docstring)."""
        return self._clock.monotonic() < work.valid_until_s

    def add_attempt(self, work: SettlementWork, attempt: storage.AttemptRecord) -> None:
        work.attempts.append(attempt)
        self._by_signature[attempt.signature] = work.id

    def of_signatures(self, signatures: Iterable[str]) -> set[str]:
        """The settlements held here that own any of ``signatures``."""
        found = (self._by_signature.get(signature) for signature in signatures)
        return {settlement_id for settlement_id in found if settlement_id is not None}

    def forget(self, work: SettlementWork) -> None:
        self.works.pop(work.id, None)
        for attempt in work.attempts:
            self._by_signature.pop(attempt.signature, None)

    def _trusted_s(self) -> float:
        return self._ttl_s * TRUSTED_SHARE_OF_TTL

    def _market(self, market_id: str) -> domain.Market | None:
        if market_id not in self._markets:
            found = storage.get_market(self._engine, market_id)
            if found is None:
                return None
            self._markets[market_id] = found
        return self._markets[market_id]

    def _can_sign(self, market: domain.Market, settlement_id: str) -> bool:
        missing = [
            str(key)
            for key in (market.fee_payer, market.settlement_authority)
            if str(key) not in self.signers
        ]
        if missing and settlement_id not in self._unsignable:
            self._unsignable.add(settlement_id)
            logger.bind(
                action="settlement.no_signer", settlement_id=settlement_id, missing=missing
            ).error(f"cannot settle {settlement_id}: this node holds no keypair for {missing}")
        return not missing

    def _release(self, claim: storage.Claim, why: str) -> None:
        try:
            self.queue().release(claim)
        except storage.StorageError as error:
            logger.bind(action="settlement.release_failed").warning(f"release failed: {error}")
        logger.bind(action="settlement.released", settlement_id=str(claim.row_id)).debug(why)
