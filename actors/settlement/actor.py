"""SettlementActor: each pending settlement driven to exactly one landed transaction.

The protocol is DESIGN.md's "Exactly once"; its decisions are the pure
:func:`actors.settlement.protocol.decide`. This actor supplies the I/O:

* **Claim.** Pending settlements are claimed from the database in batches
  (``storage.settlement_queue``), when MatchActor says some were written
  (:class:`SettlementsPending`) and every ``poll_interval_s`` (fills written by
  other nodes, claims that expired). Claims are renewed every third of their
  TTL; a renewal or write that finds the claim lost drops the settlement here
  at once. A claim is also trusted locally only until its TTL (from when it
  was taken) has nearly run out: nothing is sent on an older one.
* **Recover first.** A claimed settlement with recorded attempts (a crash, a
  takeover) is not touched until the chain was asked about every one of its
  signatures, history searched; then :func:`decide` says what to do.
* **Attempt.** With a fresh blockhash (BlockhashActor) it builds and signs the
  settlement (``market.build_settlement_transaction``), writes the attempt
  ahead (signature, raw bytes, ``last_valid_block_height``), and only then
  sends it through the RpcRouter at critical priority, preflight skipped:
  a transaction the program refuses then lands *failed*, which proves it can
  never land later, instead of leaving a doubt.
* **Watch.** Every ``status_interval_s`` it learns the confirmed block height
  (BlockhashActor) and then asks ``getSignatureStatuses`` (history searched,
  256 per request) about every live attempt; every ``resend_interval_s`` it
  resends a live attempt's bytes unchanged while its blockhash is valid.
* **Finish.** Landed: ``confirm_settlement`` (slot, transaction history).
  Landed with an error: ``fail_settlement`` with the reason, and the order whose
  leg was refused is marked unfunded; no token moved. No status and the block
  height past ``last_valid_block_height``: the attempt is marked expired and a
  new one is made.

Failure policy: a storage or RPC error is logged and the step retried on the
next tick; nothing here fails the actor. On stop, every claim still held is
released, so a restarted actor (or another node) recovers it at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from solders.hash import Hash
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import market as domain
import storage
from actors.blockhash import ExpiryVerdict, FreshBlockhash, GetBlockhash, IsExpired, Unavailable
from actors.lock_actor import MessageSink
from actors.pipeline_messages import SettlementBacklog, SettlementsPending
from actors.poison import remember_failure
from actors.rpc.client import RouterAddress, RpcClient, reply_to_actor, send_transaction_params
from actors.rpc.messages import Priority, RpcOutcome, RpcSuccess
from actors.settlement.claimed import ClaimedSettlements
from actors.settlement.messages import (
    Drain,
    GetSettlementState,
    SettlementSettings,
    SettlementState,
)
from actors.settlement.protocol import (
    AttemptView,
    Decision,
    Expire,
    Landed,
    LandedFailed,
    SignatureStatus,
    Wait,
    decide,
    parse_signature_statuses,
)
from actors.settlement.work import (
    AttemptsExpired,
    Finished,
    SettlementWork,
    confirmed,
    finish_decision,
)
from supervision import Clock, CrankActor, InputKey, working_on
from supervision.crashpoints import crash_point

__all__ = ["SettlementActor"]

MAX_SIGNATURES_PER_REQUEST = 256  # getSignatureStatuses' limit
ATTEMPT_BATCH = 64  # attempts written ahead in one transaction (and confirmations)
Listener = Callable[[Finished | AttemptsExpired], None]


@dataclass(frozen=True)
class _Tick:
    what: str  # claim | status | resend | renew | fees


@dataclass(frozen=True)
class _Height:
    answer: ExpiryVerdict | Unavailable


@dataclass(frozen=True)
class _Blockhash:
    answer: FreshBlockhash | Unavailable


@dataclass(frozen=True)
class _Statuses:
    signatures: tuple[str, ...]
    block_height: int | None
    outcome: RpcOutcome


@dataclass(frozen=True)
class _Sent:
    signature: str
    outcome: RpcOutcome


@dataclass(frozen=True)
class _Fees:
    outcome: RpcOutcome


@dataclass
class _Counters:
    confirmed: int = 0
    failed: int = 0
    attempts_made: int = 0
    expired_attempts: int = 0
    resends: int = 0
    claims_lost: int = 0


@dataclass
class _StatusRound:
    pending: int = 0  # requests not answered yet
    statuses: dict[str, SignatureStatus | None] = field(default_factory=dict)


class SettlementActor(CrankActor):
    """See the module docstring. ``signers`` maps base58 public keys to the
    keypairs this node may sign with (fee payers, settlement authorities)."""

    def __init__(
        self,
        engine: Engine,
        router: RouterAddress,
        blockhash: RouterAddress,
        signers: Mapping[str, Keypair],
        *,
        node_id: str,
        match_sink: MessageSink | None = None,
        settings: SettlementSettings | None = None,
        listeners: Sequence[Listener] = (),
        db_time_offset_s: Callable[[], float] = lambda: 0.0,
        name: str = "settlement",
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.settings = settings or SettlementSettings()
        self._engine = engine
        self._rpc = RpcClient(router)
        self._blockhash = blockhash
        self._sink = match_sink
        self._listeners = tuple(listeners)
        self._claims = ClaimedSettlements(
            engine, node_id, signers, claim_ttl_s=self.settings.claim_ttl_s,
            clock=self.clock, db_time_offset_s=db_time_offset_s,
        )  # fmt: skip
        self._block_height: int | None = None
        self._recent_fees: list[int] = []
        self._blockhash_pending = False
        self._status_round: _StatusRound | None = None
        self._claim_soon = False
        self._full = False
        self._drain: Drain | None = None
        self.counters = _Counters()

    # -- lifecycle ------------------------------------------------------------------------

    def on_start(self) -> None:
        settings = self.settings
        timers = self.timers
        timers.send_periodically("claim", settings.poll_interval_s, _Tick("claim"), 0.0)
        timers.send_periodically("status", settings.status_interval_s, _Tick("status"))
        timers.send_periodically("resend", settings.resend_interval_s, _Tick("resend"))
        timers.send_periodically("renew", settings.claim_ttl_s / 3, _Tick("renew"))
        if isinstance(settings.fee_policy, domain.PercentilePriorityFee):
            timers.send_periodically("fees", settings.fee_refresh_s, _Tick("fees"), 0.0)

    def on_stop(self) -> None:
        self._claims.release_all()

    def on_input_failure(self, inputs: tuple[InputKey, ...], error: BaseException) -> None:
        # A settlement this actor failed on twice is quarantined (actors.poison).
        remember_failure(self._engine, self.name, inputs, error)

    def on_receive(self, message: Any) -> Any:
        match message:
            case SettlementsPending():
                self._soon()
            case _Tick(what):
                self._tick(what)
            case _Height(answer):
                self._on_height(answer)
            case _Statuses():
                self._on_statuses(message)
            case _Blockhash(answer):
                self._on_blockhash(answer)
            case _Sent(signature, outcome):
                self._on_sent(signature, outcome)
            case _Fees(outcome):
                self._on_fees(outcome)
            case Drain():
                self._start_drain(message)
            case GetSettlementState():
                return self._state()
            case _:
                logger.bind(action="settlement.unknown_message").warning(
                    f"{self.name} ignored a {type(message).__name__}"
                )
        return None

    def _tick(self, what: str) -> None:
        handlers: dict[str, Callable[[], None]] = {
            "claim": self._claim,
            "status": self._ask_height,
            "resend": self._resend_due,
            "renew": self._renew,
            "fees": self._ask_fees,
        }
        handlers[what]()

    # -- claiming ----------------------------------------------------------------------------

    def _soon(self) -> None:
        """Claim shortly: fills come in bursts, one claim statement serves many."""
        if not self._claim_soon:
            self._claim_soon = True
            self.timers.send_once("claim-soon", 0.01, _Tick("claim"))

    def _claim(self) -> None:
        self._claim_soon = False
        room = self.settings.max_in_flight - len(self._claims)
        if self._drain is not None or room <= 0:
            return
        wanted = min(room, self.settings.claim_batch)
        try:
            claimed = self._claims.claim(wanted)
        except storage.StorageError as error:
            logger.bind(action="settlement.claim_failed").warning(f"claiming failed: {error}")
            return
        if claimed:
            self._update_backlog()
            self._request_blockhash()
        if claimed == wanted:
            self._soon()  # more may be waiting

    def _renew(self) -> None:
        for work in self._claims.renew():
            self._lost(work, forgotten=True)

    def _lost(self, work: SettlementWork, *, forgotten: bool = False) -> None:
        self.counters.claims_lost += 1
        logger.bind(action="settlement.claim_lost", settlement_id=work.id).warning(
            f"the claim of settlement {work.id} was lost; another node recovers it"
        )
        if not forgotten:
            self._claims.forget(work)
        self._after_change()

    def _forget(self, work: SettlementWork) -> None:
        self._claims.forget(work)
        self._after_change()

    def _after_change(self) -> None:
        self._update_backlog()
        self._check_drained()

    # -- attempts ----------------------------------------------------------------------------

    def _request_blockhash(self) -> None:
        if self._blockhash_pending or not any(w.needs_attempt for w in self._claims):
            return
        self._blockhash_pending = True
        self._blockhash.tell(GetBlockhash(reply_to_actor(self, _Blockhash)))

    def _on_blockhash(self, answer: FreshBlockhash | Unavailable) -> None:
        self._blockhash_pending = False
        if isinstance(answer, Unavailable):
            logger.bind(action="settlement.no_blockhash").warning(
                f"no blockhash for new attempts, will retry: {answer.reason}"
            )
            return
        if answer.block_height is not None:
            self._see_height(answer.block_height)
        price = self.settings.fee_policy.micro_lamports_per_unit(self._recent_fees)
        works = [w for w in self._claims if w.needs_attempt and self._claims.held(w)]
        for start in range(0, len(works), ATTEMPT_BATCH):
            self._attempt_batch(works[start : start + ATTEMPT_BATCH], answer, price)

    def _attempt_batch(
        self, works: list[SettlementWork], fresh: FreshBlockhash, price: int
    ) -> None:
        """Sign each, write them all ahead in one transaction, then send those written."""
        drafts = [self._draft(work, fresh, price) for work in works]
        try:
            results = storage.record_attempts(self._claims.queue(), drafts)
        except storage.StorageError as error:
            logger.bind(action="settlement.attempts_not_written", count=len(works)).warning(
                f"{len(works)} attempts were not written, will retry: {error}"
            )
            return
        written = []
        for work, result in zip(works, results, strict=True):
            if isinstance(result, storage.ClaimLost):
                self._lost(work)
            elif isinstance(result, storage.StorageError):
                logger.bind(action="settlement.attempt_not_written", settlement_id=work.id).warning(
                    f"the attempt of {work.id} was not written, will retry: {result}"
                )
                self._reread_attempts(work)
            else:
                self.counters.attempts_made += 1
                self._claims.add_attempt(work, result)
                written.append((work, result.signature))
        if written:
            crash_point("attempt_written")
        for work, signature in written:
            # A process frozen between the write and here wakes up with a claim it no
            # longer trusts: the attempt stays recorded for whoever recovers it.
            if self._claims.held(work):
                self._send(work, signature)

    def _reread_attempts(self, work: SettlementWork) -> None:
        """After a refused write (StateConflict: the database knows attempts this instance
        does not), take the stored attempts as they are and ask the chain about them
        before anything else. With none stored, the next blockhash makes a new attempt."""
        try:
            stored = storage.list_attempts(self._engine, work.id)
        except storage.StorageError as error:
            logger.bind(action="settlement.reread_failed", settlement_id=work.id).warning(
                f"could not re-read the attempts of {work.id}, will retry: {error}"
            )
            return
        for attempt in stored:
            if attempt.signature not in {a.signature for a in work.attempts}:
                self._claims.add_attempt(work, attempt)
        work.attempts = list(stored)
        work.needs_check = bool(stored)

    def _draft(
        self, work: SettlementWork, fresh: FreshBlockhash, price: int
    ) -> storage.AttemptDraft:
        market = work.market
        with working_on(work.input_key):
            transaction = domain.build_settlement_transaction(
                market,
                work.fill,
                fee_payer=self._claims.signers[str(market.fee_payer)],
                settlement_authority=self._claims.signers[str(market.settlement_authority)],
                recent_blockhash=Hash.from_string(fresh.blockhash),
                compute_unit_price_micro_lamports=price,
                compute_unit_limit=self.settings.compute_unit_limit,
            )
        return storage.AttemptDraft(
            work.claim, str(transaction.signature), transaction.raw_bytes, fresh.blockhash,
            fresh.last_valid_block_height,
        )  # fmt: skip

    def _send(self, work: SettlementWork, signature: str) -> None:
        raw = work.raw(signature)
        work.sent_at_s[signature] = self.clock.monotonic()
        self._rpc.call(
            "sendTransaction",
            send_transaction_params(raw, skip_preflight=True),
            reply_to_actor(self, lambda outcome: _Sent(signature, outcome)),
            priority=Priority.CRITICAL,
            deadline_s=self.settings.request_deadline_s,
        )

    def _on_sent(self, signature: str, outcome: RpcOutcome) -> None:
        if not isinstance(outcome, RpcSuccess):
            logger.bind(action="settlement.send_failed", signature=signature).info(
                f"sending {signature} failed; it is resent while valid: {outcome}"
            )

    def _resend_due(self) -> None:
        now_s = self.clock.monotonic()
        due_after_s = self.settings.resend_interval_s * 0.9
        for work in self._claims:
            if not self._claims.held(work) or work.needs_check:
                continue
            for signature in work.live_signatures(self._block_height):
                if now_s - work.sent_at_s.get(signature, -1e18) >= due_after_s:
                    self.counters.resends += signature in work.sent_at_s
                    self._send(work, signature)

    # -- watching the chain -------------------------------------------------------------------

    def _ask_height(self) -> None:
        self._request_blockhash()
        watched = [work for work in self._claims if work.attempts]
        if self._status_round is not None or not watched:
            return
        lowest = min(a.last_valid_block_height for w in watched for a in w.attempts)
        self._status_round = _StatusRound()
        self._blockhash.tell(IsExpired(lowest, reply_to_actor(self, _Height)))

    def _on_height(self, answer: ExpiryVerdict | Unavailable) -> None:
        if isinstance(answer, ExpiryVerdict):
            self._see_height(answer.block_height)
        signatures = [signature for work in self._claims for signature in work.signatures_to_ask()]
        round_ = self._status_round
        if round_ is None or not signatures:
            self._status_round = None
            return
        height = self._block_height  # known before the statuses are asked for
        for start in range(0, len(signatures), MAX_SIGNATURES_PER_REQUEST):
            chunk = tuple(signatures[start : start + MAX_SIGNATURES_PER_REQUEST])
            round_.pending += 1
            self._rpc.call(
                "getSignatureStatuses",
                [list(chunk), {"searchTransactionHistory": True}],
                reply_to_actor(self, _statuses_of(chunk, height)),
                priority=Priority.CRITICAL,
                deadline_s=self.settings.request_deadline_s,
            )

    def _see_height(self, height: int) -> None:
        if self._block_height is None or height > self._block_height:
            self._block_height = height

    def _on_statuses(self, answer: _Statuses) -> None:
        round_ = self._status_round
        if round_ is None:
            return
        round_.pending -= 1
        if isinstance(answer.outcome, RpcSuccess):
            try:
                found = parse_signature_statuses(answer.signatures, answer.outcome.result)
            except ValueError as error:
                logger.bind(action="settlement.bad_status_answer").warning(str(error))
            else:
                round_.statuses.update(found)
        else:
            logger.bind(action="settlement.status_failed").info(f"statuses: {answer.outcome}")
        if round_.pending == 0:
            self._status_round = None
            self._decide_all(round_.statuses, answer.block_height)

    def _decide_all(self, statuses: dict[str, SignatureStatus | None], height: int | None) -> None:
        landed: list[tuple[SettlementWork, Landed]] = []
        for settlement_id in sorted(self._claims.of_signatures(statuses)):
            work = self._claims.works.get(settlement_id)
            if work is None:
                continue
            views = [
                AttemptView(a.signature, a.state, a.last_valid_block_height) for a in work.attempts
            ]
            asked = {
                a.signature: statuses[a.signature] for a in work.attempts if a.signature in statuses
            }
            if work.needs_check and len(asked) < len(views):
                continue  # recovery decides only once every signature was asked about
            with working_on(work.input_key):
                decision = decide(views, asked, height)
                if isinstance(decision, Landed):
                    work.needs_check = False
                    landed.append((work, decision))
                else:
                    self._act(work, decision)
        for start in range(0, len(landed), ATTEMPT_BATCH):
            self._confirm_batch(landed[start : start + ATTEMPT_BATCH])

    def _confirm_batch(self, landed: list[tuple[SettlementWork, Landed]]) -> None:
        """Record landed attempts confirmed, in one transaction."""
        crash_point("attempt_landed")
        confirmations = [
            storage.Confirmation(work.claim, decision.signature, decision.slot)
            for work, decision in landed
        ]
        try:
            results = storage.confirm_settlements(self._claims.queue(), confirmations)
        except storage.StorageError as error:
            logger.bind(action="settlement.confirm_failed", count=len(landed)).warning(
                f"recording {len(landed)} confirmations failed, will retry: {error}"
            )
            for work, _ in landed:
                work.needs_check = True
            return
        for (work, decision), result in zip(landed, results, strict=True):
            if isinstance(result, storage.ClaimLost):
                self._lost(work)
            elif result is not None:
                logger.bind(action="settlement.write_failed", settlement_id=work.id).warning(
                    f"recording {work.id} confirmed failed, will retry: {result}"
                )
                self._reread_attempts(work)
            else:
                self.counters.confirmed += 1
                self._tell_listeners(confirmed(work, decision))
                self._forget(work)

    def _act(self, work: SettlementWork, decision: Decision) -> None:
        work.needs_check = False
        if isinstance(decision, Wait):
            for signature in decision.resend:
                if signature not in work.sent_at_s and self._claims.held(work):
                    self._send(work, signature)  # recovered, never sent by this instance
            return
        try:
            finished = finish_decision(self._claims.queue(), work, decision)
        except storage.ClaimLost:
            self._lost(work)
            return
        except storage.StorageError as error:
            logger.bind(action="settlement.write_failed", settlement_id=work.id).warning(
                f"recording {type(decision).__name__} for {work.id} failed, will retry: {error}"
            )
            work.needs_check = True
            return
        if isinstance(decision, Expire):
            self.counters.expired_attempts += len(decision.signatures)
            if decision.signatures:
                self._tell_listeners(AttemptsExpired(work.id, decision.signatures))
            self._request_blockhash()
            return
        assert finished is not None  # LandedFailed finishes the settlement
        if isinstance(decision, LandedFailed):
            self.counters.failed += 1
            finished.mark_orders(self._engine)
        self._tell_listeners(finished)
        self._forget(work)

    def _tell_listeners(self, event: Finished | AttemptsExpired) -> None:
        for listener in self._listeners:
            listener(event)

    # -- fees, backpressure, drain, state -----------------------------------------------------

    def _ask_fees(self) -> None:
        self._rpc.call(
            "getRecentPrioritizationFees", [], reply_to_actor(self, _Fees), priority=Priority.LOW
        )

    def _on_fees(self, outcome: RpcOutcome) -> None:
        if isinstance(outcome, RpcSuccess) and isinstance(outcome.result, list):
            self._recent_fees = [
                int(entry["prioritizationFee"])
                for entry in outcome.result
                if isinstance(entry, dict) and isinstance(entry.get("prioritizationFee"), int)
            ]

    def _update_backlog(self) -> None:
        in_flight = len(self._claims)
        full = in_flight >= self.settings.max_in_flight or (
            self._full and in_flight > self.settings.max_in_flight // 2
        )
        if full != self._full:
            self._full = full
            if self._sink is not None:
                self._sink.tell(SettlementBacklog(full, in_flight))

    def _start_drain(self, drain: Drain) -> None:
        self._drain = drain
        self.timers.cancel("claim")
        logger.bind(action="settlement.draining", in_flight=len(self._claims)).info(
            f"draining {len(self._claims)} settlements in flight; claiming no more"
        )
        self._check_drained()

    def _check_drained(self) -> None:
        if self._drain is not None and not len(self._claims):
            self._drain.reply(0)

    def _state(self) -> SettlementState:
        works = self._claims
        counters = self.counters
        return SettlementState(
            in_flight=len(self._claims),
            building=sum(w.needs_attempt for w in works),
            live_attempts=sum(len(w.live_signatures(None)) for w in works),
            confirmed=counters.confirmed,
            failed=counters.failed,
            attempts_made=counters.attempts_made,
            expired_attempts=counters.expired_attempts,
            resends=counters.resends,
            claims_lost=counters.claims_lost,
            block_height=self._block_height,
            draining=self._drain is not None,
            full=self._full,
        )


def _statuses_of(chunk: tuple[str, ...], height: int | None) -> Callable[[RpcOutcome], _Statuses]:
    return lambda outcome: _Statuses(chunk, height, outcome)
