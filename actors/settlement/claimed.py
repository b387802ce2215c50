"""The settlements one SettlementActor holds claims on: claiming, renewing, releasing.

Used from the actor's thread only (no locking). A claim is trusted locally
until ``valid_until_s`` on the actor's clock: its TTL, counted from just before
the claim (or renewal) statement, less a margin for clock drift between this
process and the database and for a slow write. Nothing is sent on a claim
past that, even before a renewal has found it lost.

A claimed settlement that cannot be worked on is quarantined with the reason,
never released to be claimed again (by this node or the next): its fill row does
not decode, its fill does not exist (or its orders do not), or one of its
recorded attempts does not decode (its settlement cannot be proven unsettled, so
no new attempt may be made). The others of the batch go on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping

from loguru import logger
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import market as domain
import storage
from actors.settlement.work import SettlementWork
from storage import MalformedRow, QuarantineEntry, entry_of, quarantine_malformed
from storage.fills import existing_fill_ids
from storage.journeys import trace_ids_in
from supervision import Clock, InputKey, working_on
from supervision.tracing import continued, log_step

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

    def newest_first(self) -> Iterator[SettlementWork]:
        """The works, the latest claimed first; not to be changed while iterating."""
        return reversed(self.works.values())

    def queue(self) -> storage.ClaimQueue:
        return storage.settlement_queue(self._engine, self._node_id, clock_offset_s=self._offset())

    def claim(self, wanted: int) -> int:
        """Claim up to ``wanted`` settlements; the number of rows claimed (some may be
        released again at once: no market, or no keypair to sign with; or quarantined:
        see the module docstring). Raises StorageError."""
        taken_at_s = self._clock.monotonic()
        claims = self.queue().claim(wanted, self._ttl_s)
        if not claims:
            return 0
        ids = [str(claim.row_id) for claim in claims]
        bad_fills: list[MalformedRow] = []
        bad_attempts: list[MalformedRow] = []
        # One read transaction for the three reads (three of their own cost two more
        # transactions a claim: at 50 fills/s most claims take one settlement).
        with storage.read_transaction(self._engine, "settlement.claimed_rows") as connection:
            fills = storage.fills_in(connection, ids, malformed=bad_fills)
            attempts = storage.attempts_by_settlement_in(connection, ids, malformed=bad_attempts)
            traces = trace_ids_in(connection, "settlement", ids)
        poisoned = self._quarantine_poisoned(ids, fills, bad_fills, bad_attempts)
        for claim, settlement_id in zip(claims, ids, strict=True):
            if settlement_id in poisoned:
                continue  # quarantined: its status keeps it from being claimed again
            fill = fills[settlement_id]
            trace_id = traces.get(settlement_id)
            with (
                working_on(InputKey("settlement", settlement_id, fill.market_id)),
                continued(trace_id),
            ):
                self._take(
                    claim,
                    settlement_id,
                    fill,
                    attempts[settlement_id],
                    taken_at_s,
                    trace_id=trace_id,
                )
        return len(claims)

    def _take(
        self,
        claim: storage.Claim,
        settlement_id: str,
        fill: domain.Fill,
        attempts: list[storage.AttemptRecord],
        taken_at_s: float,
        *,
        trace_id: str | None,
    ) -> None:
        market = self._market(fill.market_id)
        if market is None or not self._can_sign(market, settlement_id):
            self._release(claim, "its market is missing, or no signer for it")
            return
        work = SettlementWork(
            claim, taken_at_s + self._trusted_s(), fill, market, attempts, trace_id=trace_id
        )
        self.works[settlement_id] = work
        log_step(
            "settlement.claimed",
            f"settlement {settlement_id} claimed by {claim.claimed_by} "
            f"(claim token {claim.claim_token})",
            settlements=(settlement_id,),
            fills=(fill.fill_id,),
            orders=(fill.maker_order_id, fill.taker_order_id),
            settlement_id=settlement_id,
            claimer=claim.claimed_by,
            claim_token=claim.claim_token,
            recorded_attempts=len(attempts),
        )
        for attempt in work.attempts:
            self._by_signature[attempt.signature] = settlement_id
        if work.attempts:
            # A journey step (with the settlement's trace id): the recovery after a crash
            # or a takeover is part of the settlement's journey.
            log_step(
                "settlement.recovering",
                f"settlement {settlement_id} has attempts: asking the chain first",
                settlements=(settlement_id,),
                signatures=[attempt.signature for attempt in work.attempts],
                settlement_id=settlement_id,
                attempts=len(work.attempts),
            )

    def _quarantine_poisoned(
        self,
        ids: list[str],
        fills: Mapping[str, domain.Fill],
        bad_fills: list[MalformedRow],
        bad_attempts: list[MalformedRow],
    ) -> set[str]:
        """Quarantine the claimed settlements that cannot be worked on (module
        docstring), with the malformed rows themselves: their ids."""
        entries: list[QuarantineEntry] = []
        for error in bad_fills:
            entries.append(entry_of(error))
            entries.append(entry_of(error, kind="settlement", why="its fill does not decode: "))
        for error in bad_attempts:
            settlement_id = error.row_id.partition("#")[0]
            entries.append(entry_of(error))
            entries.append(
                entry_of(
                    error,
                    kind="settlement",
                    row_id=settlement_id,
                    why="one of its attempts does not decode, so it cannot be proven unsettled: ",
                )
            )
        decoded = {entry.row_id for entry in entries if entry.kind == "settlement"}
        missing = [i for i in ids if i not in fills and i not in decoded]
        if missing:
            entries.extend(self._missing_fill_entries(missing))
        poisoned = {entry.row_id for entry in entries if entry.kind == "settlement"}
        quarantine_malformed(self._engine, entries)
        return poisoned

    def _missing_fill_entries(self, missing: list[str]) -> list[QuarantineEntry]:
        existing = existing_fill_ids(self._engine, missing)
        entries = []
        for settlement_id in missing:
            found = storage.get_settlement(self._engine, settlement_id)
            raw = {} if found is None else dataclasses.asdict(found)
            fill_id = raw.get("fill_id", settlement_id)
            reason = (
                f"its fill {fill_id} refers to an order that does not exist"
                if settlement_id in existing
                else f"its fill {fill_id} does not exist"
            )
            entries.append(
                QuarantineEntry("settlement", settlement_id, reason, raw, raw.get("market_id"))
            )
        return entries

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
