"""SettlementActor: each pending settlement driven to exactly one landed transaction.

The protocol is docs/ARCHITECTURE.md's "Exactly once"; its decisions are the pure
:func:`actors.settlement.protocol.decide`. This actor supplies the I/O:

* **Claim.** Pending settlements are claimed from the database in batches
  (``storage.settlement_queue``), when MatchActor says some were written
  (:class:`SettlementsPending`) and every ``poll_interval_s`` (fills written by
  other nodes, claims that expired). Claims are renewed every third of their
  TTL; a renewal or write that finds the claim lost drops the settlement here
  at once. A claim is also trusted locally only until its TTL (from when it
  was taken) has nearly run out: nothing is sent on an older one.
* **Recover first.** A claimed settlement with recorded attempts (a crash, a
  takeover) is not touched until the chain was asked about it: its marker
  first (``getMultipleAccounts`` at ``confirmed``), and every one of its
  signatures, history searched; then :func:`decide` says what to do. A marker
  that exists means settled: the landing is looked up in the marker's history
  (``getSignaturesForAddress``), and if that history is pruned the settlement
  is recorded confirmed with its signature unknown (NULL, noted in
  ``last_error``).
* **Attempt.** With a fresh blockhash (BlockhashActor) it builds and signs the
  settlement with its marker create (``_draft``: ``market.build_settlement_transaction``),
  writes the attempt ahead (signature, raw bytes, ``last_valid_block_height``,
  ``marker_address``), and only then sends it through the RpcRouter at
  critical priority. Its price and compute-unit limit are the market's
  (actors/settlement/fees.py: recent fees of the accounts it writes, a limit
  from simulation, the hard per-settlement cap).
* **Preflight** (``preflight``, default ``first_send``): the first send of an
  attempt is simulated by the RPC node, resends are not. The first send is where
  a hopeless settlement (a leg refused: funds gone, delegate revoked) is caught
  before it costs a fee; resends skip it because they only repeat bytes already
  judged, a lagging node's preflight would refuse them falsely
  (``BlockhashNotFound``), and a landed one would be refused ``AlreadyProcessed``.
  A refused send is not on chain, and the same bytes may have reached another
  endpoint: it proves nothing about the attempt. A hopeless refusal only stops
  the resends; the settlement is failed (as a landed-failed one) once the
  protocol finds every attempt dead, and if the attempt lands after all, the
  chain's answer wins.
* **Watch.** As each slot arrives from the slot feed (``slot_feed_urls``,
  actors/rpc/slot_feed.py; a slot during a round asks again once it ends), or
  every ``status_interval_s`` while there is no feed or it has said nothing for
  ``slot_feed_stale_s``, it learns the confirmed block height
  *and the slot it was read at* (BlockhashActor, ``getEpochInfo``), then asks
  ``getSignatureStatuses`` (history searched, 256 per request) about every live
  attempt and reads the markers that can decide something (recovery, or an
  attempt past its last valid block height) with ``minContextSlot`` = that
  slot. Every resend interval it resends a live attempt's bytes unchanged while
  its blockhash is valid.
* **The context-slot rule.** Each answer's own context slot (``RpcSuccess.context_slot``,
  whichever endpoint or retry produced it) goes to :func:`decide`: a "no status"
  or "marker absent" from a view older than the height's slot decides nothing
  (logged ``settlement.status_from_behind``) and is asked again next round.
* **Finish.** Landed: ``confirm_settlement`` (slot, transaction history).
  Landed with a token error: ``fail_settlement`` with the reason, and the order
  whose leg was refused is marked unfunded; no token moved. Refused at the
  marker create (``AccountAlreadyInUse``): settled by another attempt if the
  marker's history shows ours, else the marker was squatted and the settlement
  is quarantined (ERROR). Provably dead (protocol.py): the attempt is marked
  expired and a new one is made.

Failure policy: a storage or RPC error is logged and the step retried on the
next tick; nothing here fails the actor. On stop, every claim still held is
released, so a restarted actor (or another node) recovers it at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from loguru import logger
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import market as domain
import storage
from actors.blockhash import ExpiryVerdict, FreshBlockhash, GetBlockhash, IsExpired, Unavailable
from actors.lock_actor import MessageSink
from actors.pipeline_messages import SettlementBacklog, SettlementsPending
from actors.poison import remember_failure
from actors.rpc.classify import MIN_CONTEXT_SLOT_NOT_REACHED
from actors.rpc.client import RouterAddress, RpcClient, reply_to_actor, send_transaction_params
from actors.rpc.messages import Priority, RpcFailure, RpcOutcome, RpcSuccess
from actors.rpc.slot_feed import SlotFeed
from actors.settlement.authorize import Refused, check_before_signing, fail_refused
from actors.settlement.claimed import ClaimedSettlements
from actors.settlement.fees import (
    Doomed,
    FeeDesk,
    preflight_doom,
    simulation_params,
    writable_token_accounts,
)
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
    FindLanding,
    Landed,
    LandedFailed,
    MarkerRead,
    ObservedHeight,
    Squatted,
    StatusAnswer,
    Wait,
    decide,
    judge_marker_history,
    parse_signature_statuses,
)
from actors.settlement.work import (
    AttemptsExpired,
    Finished,
    SettlementWork,
    confirmed,
    draft_attempt,
    fee_of,
    finish_decision,
)
from supervision import Clock, CrankActor, InputKey, SendResult, working_on
from supervision.crashpoints import crash_point
from supervision.tracing import continued, log_step

__all__ = ["SettlementActor"]

MAX_SIGNATURES_PER_REQUEST = 256  # getSignatureStatuses' limit
MAX_ACCOUNTS_PER_REQUEST = 100  # getMultipleAccounts' limit
MARKER_HISTORY_LIMIT = 50  # getSignaturesForAddress(marker): a handful at most are ours
ATTEMPT_BATCH = 64  # attempts written ahead in one transaction (and confirmations)
Listener = Callable[[Finished | AttemptsExpired | Refused], None]


@dataclass(frozen=True)
class _Tick:
    what: str  # claim | status | resend | renew | fees | slot (the slot feed's, not a timer's)


@dataclass(frozen=True)
class _Height:
    answer: ExpiryVerdict | Unavailable


@dataclass(frozen=True)
class _Blockhash:
    answer: FreshBlockhash | Unavailable


@dataclass(frozen=True)
class _Statuses:
    signatures: tuple[str, ...]
    outcome: RpcOutcome
    traces: tuple[str, ...] = ()  # of the settlements asked about: linked (trace_links)

    def trace_keys(self) -> dict[str, tuple[str, ...]]:
        return {"signature": self.signatures}

    def trace_links(self) -> tuple[str, ...]:
        return self.traces


@dataclass(frozen=True)
class _Markers:
    addresses: tuple[str, ...]
    outcome: RpcOutcome
    traces: tuple[str, ...] = ()  # of the settlements whose markers were read

    def trace_links(self) -> tuple[str, ...]:
        return self.traces


@dataclass(frozen=True)
class _MarkerHistory:
    settlement_id: str
    find: FindLanding
    outcome: RpcOutcome

    def trace_keys(self) -> dict[str, tuple[str, ...]]:
        return {"settlement": (self.settlement_id,)}


@dataclass(frozen=True)
class _Sent:
    signature: str
    outcome: RpcOutcome
    settlement_id: str = ""
    preflight: bool = False

    def trace_keys(self) -> dict[str, tuple[str, ...]]:
        return {"signature": (self.signature,)}


@dataclass(frozen=True)
class _Fees:
    market_id: str
    accounts: int
    outcome: RpcOutcome


@dataclass(frozen=True)
class _Simulated:
    market_id: str
    outcome: RpcOutcome


@dataclass
class _Counters:
    confirmed: int = 0
    failed: int = 0
    attempts_made: int = 0
    expired_attempts: int = 0
    resends: int = 0
    claims_lost: int = 0
    refused: int = 0  # settlements the makers' signatures do not authorize (never signed)
    preflight_refused: int = 0  # sends refused at preflight as hopeless
    status_rounds: int = 0
    rounds_on_slots: int = 0
    slot_cues: int = 0


@dataclass
class _StatusRound:
    """One round of questions, all judged against ``height``: the confirmed height and
    its slot as known *before* any of them was asked."""

    height: ObservedHeight | None = None
    pending: int = 0  # requests not answered yet
    statuses: dict[str, StatusAnswer] = field(default_factory=dict)
    markers: dict[str, MarkerRead] = field(default_factory=dict)  # by marker address


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
        chain_cut_for_s: Callable[[], float] = lambda: 0.0,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.settings = settings or SettlementSettings()
        self._chain_cut_for_s = chain_cut_for_s
        self._engine = engine
        self._rpc = RpcClient(router)
        self._blockhash = blockhash
        self._sink = match_sink
        self._listeners = tuple(listeners)
        self._claims = ClaimedSettlements(
            engine,
            node_id,
            signers,
            claim_ttl_s=self.settings.claim_ttl_s,
            clock=self.clock,
            db_time_offset_s=db_time_offset_s,
        )
        self._block_height: int | None = None
        self._height: ObservedHeight | None = None  # the highest, with its slot
        self._finding: set[str] = set()  # settlements whose marker history is asked
        self._behind_logged: set[str] = set()
        settings = self.settings
        self._fees = FeeDesk(
            settings.fee_policy,
            default_limit=settings.compute_unit_limit,
            max_priority_fee_lamports=settings.max_priority_fee_lamports,
            margin_percent=settings.compute_unit_margin_percent,
            margin_units=settings.compute_unit_margin_units,
            simulate=settings.simulate_compute_units,
        )
        self._doomed: dict[str, Doomed] = {}  # settlements refused at preflight as hopeless
        self._blockhash_pending = False
        self._status_round: _StatusRound | None = None
        self._slot_feed: SlotFeed | None = None
        self._slot_seen_s: float | None = None  # when the feed last gave a slot
        self._round_again = False  # a slot came during a round: ask again after it
        self._cue_waiting = False  # a slot cue is in the mailbox: the feed adds no other
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
        if settings.slot_feed_urls:
            self._slot_feed = SlotFeed(
                settings.slot_feed_urls, self._slot_arrived, name=f"{self.name}-slots"
            )
            self._slot_feed.start()

    def on_stop(self) -> None:
        self._close_slot_feed()
        self._claims.release_all()

    def on_failure(self, *_failure: Any) -> None:
        # A failed tell skips on_stop: the feed's thread ends with this instance anyway.
        self._close_slot_feed()

    def _close_slot_feed(self) -> None:
        if self._slot_feed is not None:
            self._slot_feed.close()
            self._slot_feed = None

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
            case _Markers():
                self._on_markers(message)
            case _MarkerHistory():
                self._on_marker_history(message)
            case _Blockhash(answer):
                self._on_blockhash(answer)
            case _Sent():
                self._on_sent(message)
            case _Fees() | _Simulated():
                self._on_fee_answer(message)
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
            "status": self._status_tick,
            "slot": self._on_slot,
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
        if self._drain is not None or room <= 0 or self._cut_off():
            return
        wanted = min(room, self.settings.claim_batch)
        try:
            claimed = self._claims.claim(wanted)
        except storage.StorageError as error:
            logger.bind(action="settlement.claim_failed").warning(f"claiming failed: {error}")
            return
        if claimed:
            self._update_backlog()
            self._ask_fees(only_new=True)
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
        self._behind_logged.discard(work.id)
        self._claims.forget(work)
        self._after_change()

    def _after_change(self) -> None:
        self._update_backlog()
        self._check_drained()

    # -- attempts ----------------------------------------------------------------------------

    def _request_blockhash(self) -> None:
        # Newest first: a claim just made is what most often needs an attempt.
        if self._blockhash_pending or not any(w.needs_attempt for w in self._claims.newest_first()):
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
        works = [w for w in self._claims if w.needs_attempt and self._claims.held(w)]
        # A market's first attempts wait for its first recent-fees answer (or failure).
        works = [w for w in works if not self._fees.of(w.market.market_id).fees_pending]
        self._simulate(works, answer)
        for start in range(0, len(works), ATTEMPT_BATCH):
            self._attempt_batch(works[start : start + ATTEMPT_BATCH], answer)

    def _attempt_batch(self, works: list[SettlementWork], fresh: FreshBlockhash) -> None:
        """Sign each, write them all ahead in one transaction, then send those written."""
        works = self._authorized(works)
        drafts = [self._draft(work, fresh) for work in works]
        if not drafts:
            return
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

    def _authorized(self, works: list[SettlementWork]) -> list[SettlementWork]:
        """The works the makers' signatures authorize (market.authorization), checked
        right before signing; the others are failed, never signed."""
        try:
            allowed, refused = check_before_signing(self._engine, works)
        except storage.StorageError as error:
            logger.bind(action="settlement.authorization_unread", count=len(works)).warning(
                f"could not read what authorizes {len(works)} settlements, will retry: {error}"
            )
            return []
        for work, refusal in refused:
            self._refuse(work, refusal)
        return allowed

    def _refuse(self, work: SettlementWork, refusal: domain.Unauthorized) -> None:
        try:
            refused = fail_refused(self._claims.queue(), work, refusal)
        except storage.ClaimLost:
            self._lost(work)
            return
        except storage.StorageError as error:  # stays unsigned; checked again next time
            logger.bind(action="settlement.write_failed", settlement_id=work.id).warning(
                f"recording {work.id} refused failed, will retry: {error}"
            )
            return
        self.counters.refused += 1
        self._tell_listeners(refused)
        self._forget(work)

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

    def _draft(self, work: SettlementWork, fresh: FreshBlockhash) -> storage.AttemptDraft:
        market_id = work.market.market_id
        limit = self._fees.limit_for(market_id)
        price = self._fees.price_for(market_id, limit)
        with working_on(work.input_key):
            return draft_attempt(work, self._claims.signers, fresh, price, limit)

    def _simulate(self, works: list[SettlementWork], fresh: FreshBlockhash) -> None:
        """Simulate one settlement of each market whose limit is not known yet (a real
        claimed fill, so the programs run the paths a settlement runs; limit 1.4M and
        price 0 so neither the limit nor the fee payer's balance for a high price can
        make the simulation fail). Attempts meanwhile use the default limit."""
        seen: set[str] = set()
        for work in works:
            market_id = work.market.market_id
            if market_id in seen or not self._fees.wants_simulation(market_id):
                continue
            seen.add(market_id)
            try:
                with working_on(work.input_key):
                    draft = draft_attempt(
                        work, self._claims.signers, fresh, 0, domain.MAX_COMPUTE_UNIT_LIMIT
                    )
            except domain.MarketError as error:
                logger.bind(action="settlement.simulation_unbuilt", market_id=market_id).info(
                    f"no settlement of {market_id} to simulate: {error}"
                )
                continue
            self._fees.of(market_id).simulating = True
            self._rpc.call(
                "simulateTransaction",
                simulation_params(draft.raw_transaction),
                reply_to_actor(self, _simulated_of(market_id)),
                priority=Priority.NORMAL,
                deadline_s=self.settings.request_deadline_s,
            )

    def _send(self, work: SettlementWork, signature: str) -> None:
        if self._cut_off():
            return  # its claim is about to be given back (_hand_over): nothing goes out
        # Under the settlement's own trace: the RPC request, its reply (_Sent) and what
        # the router does for it join the settlement's journey (found by trace id).
        with continued(work.trace_id):
            self._send_traced(work, signature)

    def _send_traced(self, work: SettlementWork, signature: str) -> None:
        raw = work.raw(signature)
        log_step(
            "settlement.sent",
            f"settlement {work.id}: {'resent' if signature in work.sent_at_s else 'sent'} "
            f"{signature}",
            settlements=(work.id,),
            signatures=(signature,),
            settlement_id=work.id,
            signature=signature,
            resend=signature in work.sent_at_s,
        )
        mode = self.settings.preflight
        preflight = mode == "always" or (mode == "first_send" and signature not in work.sent_at_s)
        work.sent_at_s[signature] = self.clock.monotonic()
        settlement_id = work.id
        self._rpc.call(
            "sendTransaction",
            send_transaction_params(raw, skip_preflight=not preflight),
            reply_to_actor(
                self, lambda outcome: _Sent(signature, outcome, settlement_id, preflight)
            ),
            priority=Priority.CRITICAL,
            deadline_s=self.settings.request_deadline_s,
        )

    def _on_sent(self, sent: _Sent) -> None:
        signature, outcome = sent.signature, sent.outcome
        if isinstance(outcome, RpcSuccess):
            return
        work = self._claims.works.get(sent.settlement_id)
        has_marker = work is not None and any(
            a.signature == signature and a.marker_address for a in work.attempts
        )
        doom = preflight_doom(outcome, has_marker=has_marker) if sent.preflight else None
        if doom is not None and work is not None:
            self.counters.preflight_refused += 1
            self._doomed[work.id] = doom
            logger.bind(
                action="settlement.preflight_refused",
                settlement_id=work.id,
                signature=signature,
                leg=doom.leg,
            ).warning(
                f"settlement {work.id}: {doom.reason}; not resent, failed once every "
                "attempt is provably dead (unless it lands after all)"
            )
            return
        logger.bind(action="settlement.send_failed", signature=signature).info(
            f"sending {signature} failed; it is resent while valid: {outcome}"
        )

    def _cut_off(self) -> bool:
        """Cut from the chain past ``chain_handover_s``: nothing to send or claim."""
        handover_s = self.settings.chain_handover_s
        return handover_s is not None and self._chain_cut_for_s() >= handover_s

    def _hand_over(self) -> None:
        """Give every claim back (cut from the chain: :meth:`_cut_off`) once no send of
        ours can still be in the router's hands (the last one is older than the request
        deadline), so that no transaction goes out under a claim given away."""
        works = list(self._claims)
        if not works:
            return
        sent = [at_s for work in works for at_s in work.sent_at_s.values()]
        if sent and self.clock.monotonic() - max(sent) < self.settings.request_deadline_s:
            return
        logger.bind(action="settlement.chain_handover", settlements=len(works)).error(
            f"no RPC endpoint has answered for {self._chain_cut_for_s():.1f}s: giving "
            f"{len(works)} settlements in flight back for nodes that can settle them"
        )
        self._claims.release_all()
        for work in works:
            self._claims.forget(work)
        self._update_backlog()

    def _resend_due(self) -> None:
        if self._cut_off():
            self._hand_over()
            return
        now_s = self.clock.monotonic()
        due_after_s = self.settings.resend_interval_s * 0.9
        for work in self._claims:
            if not self._claims.held(work) or work.needs_check or work.id in self._doomed:
                continue
            for signature in work.live_signatures(self._block_height):
                if now_s - work.sent_at_s.get(signature, -1e18) >= due_after_s:
                    self.counters.resends += signature in work.sent_at_s
                    self._send(work, signature)

    # -- watching the chain -------------------------------------------------------------------

    def _slot_arrived(self, _slot: int) -> None:
        """The feed's callback, on its thread: a cue in this actor's mailbox, on a trace of
        its own (which slot does not matter: only the round's answers decide). At most one
        waits there at a time, so a feed that floods costs this actor nothing more."""
        if self._cue_waiting:
            return
        self._cue_waiting = True
        if self.deliver_to_self(_Tick("slot"), sender="slot-feed") is not SendResult.DELIVERED:
            self._cue_waiting = False  # not in the mailbox: the next slot tries again

    def _feed_live(self) -> bool:
        seen = self._slot_seen_s
        return seen is not None and self.clock.monotonic() - seen < self.settings.slot_feed_stale_s

    def _status_tick(self) -> None:
        """The timer: a round, unless the slot feed paces them."""
        if self._feed_live():
            self._request_blockhash()
        else:
            self._ask_height()

    def _on_slot(self) -> None:
        """A slot was produced: what it confirmed is seen by a round asked now. Only the
        round's answers decide anything (the feed is a hint, never evidence)."""
        self._cue_waiting = False
        self.counters.slot_cues += 1
        self._slot_seen_s = self.clock.monotonic()
        if self._status_round is not None:
            self._round_again = True
        elif self._ask_height():
            self.counters.rounds_on_slots += 1

    def _ask_height(self) -> bool:
        """Start a round of questions about the attempts in flight; False if none is needed
        (nothing sent) or one is already under way."""
        self._request_blockhash()
        watched = [work for work in self._claims if work.attempts]
        if self._status_round is not None or not watched:
            return False
        lowest = min(a.last_valid_block_height for w in watched for a in w.attempts)
        self._status_round = _StatusRound()
        self.counters.status_rounds += 1
        self._blockhash.tell(IsExpired(lowest, reply_to_actor(self, _Height)))
        return True

    def _round_over(self) -> None:
        self._status_round = None
        if self._round_again:
            self._round_again = False
            if self._ask_height():
                self.counters.rounds_on_slots += 1

    def _on_height(self, answer: ExpiryVerdict | Unavailable) -> None:
        if isinstance(answer, ExpiryVerdict):
            self._see_height(answer.block_height, answer.slot)
        round_ = self._status_round
        works = [w for w in self._claims if w.attempts and w.id not in self._finding]
        # Each signature with its settlement's stored trace (linked by the replies), in order.
        trace_of = {s: work.trace_id for work in works for s in work.signatures_to_ask()}
        signatures = list(trace_of)
        if round_ is None or not signatures:
            self._round_over()
            return
        # Known before any question is sent: every "no" of this round is judged against it.
        round_.height = self._height
        for start in range(0, len(signatures), MAX_SIGNATURES_PER_REQUEST):
            chunk = tuple(signatures[start : start + MAX_SIGNATURES_PER_REQUEST])
            round_.pending += 1
            self._rpc.call(
                "getSignatureStatuses",
                [list(chunk), {"searchTransactionHistory": True}],
                reply_to_actor(self, _statuses_of(chunk, _traces(chunk, trace_of))),
                priority=Priority.CRITICAL,
                deadline_s=self.settings.request_deadline_s,
            )
        self._ask_markers(round_, works)

    def _ask_markers(self, round_: _StatusRound, works: list[SettlementWork]) -> None:
        """Read the markers that can decide something now: those of settlements being
        recovered, and of settlements with an attempt past its last valid block height.
        At ``confirmed``, with ``minContextSlot`` the slot of the round's height, so an
        endpoint from behind refuses rather than answering "absent" from the past."""
        height = round_.height
        addresses = sorted(
            {
                address
                for work in works
                if (address := work.marker_address) is not None
                and (work.needs_check or work.some_attempt_past(height))
            }
        )
        config: dict[str, Any] = {
            "commitment": "confirmed",
            "encoding": "base64",
            "dataSlice": {"offset": 0, "length": 0},
        }
        if height is not None:
            config["minContextSlot"] = height.slot
        trace_of = {a: work.trace_id for work in works if (a := work.marker_address) is not None}
        for start in range(0, len(addresses), MAX_ACCOUNTS_PER_REQUEST):
            chunk = tuple(addresses[start : start + MAX_ACCOUNTS_PER_REQUEST])
            round_.pending += 1
            self._rpc.call(
                "getMultipleAccounts",
                [list(chunk), config],
                reply_to_actor(self, _markers_of(chunk, _traces(chunk, trace_of))),
                priority=Priority.CRITICAL,
                deadline_s=self.settings.request_deadline_s,
            )

    def _see_height(self, height: int, slot: int | None = None) -> None:
        if self._block_height is None or height > self._block_height:
            self._block_height = height
        if slot is not None and (self._height is None or height > self._height.block_height):
            self._height = ObservedHeight(height, slot)

    def _on_statuses(self, answer: _Statuses) -> None:
        round_ = self._status_round
        if round_ is None:
            return
        round_.pending -= 1
        outcome = answer.outcome
        if isinstance(outcome, RpcSuccess):
            try:
                found = parse_signature_statuses(
                    answer.signatures, outcome.result, outcome.context_slot
                )
            except ValueError as error:
                logger.bind(action="settlement.bad_status_answer").warning(str(error))
            else:
                round_.statuses.update(found)
        else:
            logger.bind(action="settlement.status_failed").info(f"statuses: {outcome}")
        self._round_answered(round_)

    def _on_markers(self, answer: _Markers) -> None:
        round_ = self._status_round
        if round_ is None:
            return
        round_.pending -= 1
        outcome = answer.outcome
        values = (
            outcome.result.get("value")
            if isinstance(outcome, RpcSuccess) and isinstance(outcome.result, dict)
            else None
        )
        slot = outcome.context_slot if isinstance(outcome, RpcSuccess) else None
        if isinstance(values, list) and len(values) == len(answer.addresses) and slot is not None:
            for address, value in zip(answer.addresses, values, strict=True):
                exists = isinstance(value, dict) and bool(value.get("lamports"))
                round_.markers[address] = MarkerRead(exists, slot)
        elif isinstance(outcome, RpcFailure) and outcome.code == MIN_CONTEXT_SLOT_NOT_REACHED:
            # Every endpoint tried was behind the slot of the height: nothing is decided.
            logger.bind(action="settlement.status_from_behind", markers=len(answer.addresses)).info(
                f"{len(answer.addresses)} markers could not be read from a view at or past "
                "the slot of the height; an answer from behind decides nothing, asking again"
            )
        else:
            logger.bind(action="settlement.marker_read_failed").info(
                f"marker read decided nothing, asked again next round: {outcome!r:.300}"
            )
        self._round_answered(round_)

    def _round_answered(self, round_: _StatusRound) -> None:
        if round_.pending == 0:
            self._status_round = None
            self._decide_all(round_)
            self._round_over()

    def _decide_all(self, round_: _StatusRound) -> None:
        statuses, height = round_.statuses, round_.height
        landed: list[tuple[SettlementWork, Landed]] = []
        for work in list(self._claims):
            if work.id in self._finding:
                continue
            views = [
                AttemptView(
                    a.signature, a.state, a.last_valid_block_height, a.marker_address is not None
                )
                for a in work.attempts
            ]
            asked = {
                a.signature: statuses[a.signature] for a in work.attempts if a.signature in statuses
            }
            if not asked:
                continue
            marker = round_.markers.get(work.marker_address or "")
            if work.needs_check and (
                len(asked) < len(views) or (work.marker_address is not None and marker is None)
            ):
                continue  # recovery decides once the marker and every signature were read
            # One settlement's decision (recovery, expiry, the marker's history asked)
            # runs under its own trace; the batches (statuses, markers, confirmations)
            # run under the round's, naming every settlement they cover.
            with working_on(work.input_key), continued(work.trace_id):
                decision = decide(views, asked, height, marker)
                if isinstance(decision, Landed) and decision.signature is not None:
                    work.needs_check = False
                    landed.append((work, decision))
                else:
                    self._act(work, decision)
        for start in range(0, len(landed), ATTEMPT_BATCH):
            self._confirm_batch(landed[start : start + ATTEMPT_BATCH])

    def _find_landing(
        self, work: SettlementWork, find: FindLanding, since_slot: int | None
    ) -> None:
        """The marker exists (or refused an attempt): find which transaction created it."""
        address = work.marker_address
        if address is None:  # a legacy settlement refused at a marker it never had
            self._quarantine(work, Squatted(f"marker refusal without a marker: {find}"))
            return
        self._finding.add(work.id)
        config: dict[str, Any] = {"commitment": "confirmed", "limit": MARKER_HISTORY_LIMIT}
        if since_slot is not None:
            config["minContextSlot"] = since_slot
        self._rpc.call(
            "getSignaturesForAddress",
            [address, config],
            reply_to_actor(self, lambda outcome: _MarkerHistory(work.id, find, outcome)),
            priority=Priority.CRITICAL,
            deadline_s=self.settings.request_deadline_s,
        )

    def _on_marker_history(self, answer: _MarkerHistory) -> None:
        self._finding.discard(answer.settlement_id)
        work = self._claims.works.get(answer.settlement_id)
        if work is None:
            return
        outcome = answer.outcome
        entries = outcome.result if isinstance(outcome, RpcSuccess) else None
        if not isinstance(entries, list):
            logger.bind(action="settlement.marker_history_failed", settlement_id=work.id).info(
                f"the marker's history of {work.id} could not be read, asked again: "
                f"{outcome!r:.300}"
            )
            work.needs_check = True
            return
        verdict = judge_marker_history(
            answer.find, entries, domain.settlement_memo(work.fill.fill_id).decode()
        )
        if isinstance(verdict, Squatted):
            self._quarantine(work, verdict)
        elif verdict.signature is not None and verdict.signature in work.signature_set():
            work.needs_check = False
            self._confirm_batch([(work, verdict)])
        else:
            note = (
                "landed, signature unknown: history pruned"
                if verdict.signature is None
                else f"landed as {verdict.signature}, not one of the recorded attempts"
            )
            self._act(work, Landed(None, None), note=note)

    def _quarantine(self, work: SettlementWork, squatted: Squatted) -> None:
        logger.bind(
            action="settlement.marker_squatted", settlement_id=work.id, marker=work.marker_address
        ).error(f"settlement {work.id} quarantined: {squatted.reason}")
        try:
            storage.quarantine_settlement(
                self._claims.queue(),
                work.claim,
                squatted.reason,
                {
                    "marker_address": work.marker_address,
                    "signatures": [a.signature for a in work.attempts],
                },
            )
        except storage.ClaimLost:
            self._lost(work)
            return
        except storage.StorageError as error:
            logger.bind(action="settlement.write_failed", settlement_id=work.id).warning(
                f"quarantining {work.id} failed, will retry: {error}"
            )
            work.needs_check = True
            return
        self._forget(work)

    def _confirm_batch(self, landed: list[tuple[SettlementWork, Landed]]) -> None:
        """Record landed attempts confirmed, in one transaction."""
        crash_point("attempt_landed")
        confirmations = []
        for work, decision in landed:
            # Only landings with a known signature come here (_decide_all routes the rest).
            assert decision.signature is not None and decision.slot is not None
            confirmations.append(
                storage.Confirmation(work.claim, decision.signature, decision.slot)
            )
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

    def _act(self, work: SettlementWork, decision: Decision, note: str | None = None) -> None:
        if isinstance(decision, FindLanding):
            work.needs_check = False
            self._find_landing(work, decision, decision.refused_slot)
            return
        if isinstance(decision, Squatted):
            self._quarantine(work, decision)
            return
        work.needs_check = False
        if isinstance(decision, Wait):
            if decision.behind and work.id not in self._behind_logged:
                self._behind_logged.add(work.id)
                logger.bind(action="settlement.status_from_behind", settlement_id=work.id).info(
                    f"settlement {work.id}: an answer from behind decides nothing, "
                    f"asking again: {decision.reason}"
                )
            for signature in decision.resend:
                if signature not in work.sent_at_s and self._claims.held(work):
                    self._send(work, signature)  # recovered, never sent by this instance
            return
        try:
            finished = finish_decision(self._claims.queue(), work, decision, note)
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
            self._expired(work, decision)
            return
        assert finished is not None  # Landed and LandedFailed finish the settlement
        if isinstance(decision, LandedFailed):
            self.counters.failed += 1
            finished.mark_orders(self._engine)
        else:
            self.counters.confirmed += 1
        self._tell_listeners(finished)
        self._forget(work)

    def _expired(self, work: SettlementWork, decision: Expire) -> None:
        """Every attempt is dead: a new attempt follows, unless a preflight refusal
        said the settlement is hopeless, in which case it fails now (nothing can land)."""
        self.counters.expired_attempts += len(decision.signatures)
        spent = decision.out_of_compute
        fees = [fee_of(work, signature) for signature in spent]
        for fee in fees:
            if fee is not None:
                self._fees.out_of_compute(work.market.market_id, fee.compute_unit_limit)
        if decision.signatures or spent:
            self._tell_listeners(
                AttemptsExpired(
                    work.id,
                    decision.signatures,
                    spent,
                    sum(fee.lamports for fee in fees if fee is not None),
                    work.market.market_id,
                )
            )
        doom = self._doomed.pop(work.id, None)
        if doom is None:
            self._request_blockhash()
            return
        try:
            storage.fail_settlement(self._claims.queue(), work.claim, doom.reason)
        except storage.ClaimLost:
            self._lost(work)
            return
        except storage.StorageError as error:
            self._doomed[work.id] = doom
            logger.bind(action="settlement.write_failed", settlement_id=work.id).warning(
                f"recording {work.id} failed at preflight failed, will retry: {error}"
            )
            work.needs_check = True
            return
        logger.bind(action="settlement.failed_at_preflight", settlement_id=work.id).warning(
            f"settlement {work.id} failed: {doom.reason}; every attempt is provably dead"
        )
        finished = Finished(work.id, work.fill, "failed", None, None, doom.reason, doom.leg)
        self.counters.failed += 1
        finished.mark_orders(self._engine)
        self._tell_listeners(finished)
        self._forget(work)

    def _tell_listeners(self, event: Finished | AttemptsExpired | Refused) -> None:
        for listener in self._listeners:
            listener(event)

    # -- fees, backpressure, drain, state -----------------------------------------------------

    def _ask_fees(self, only_new: bool = False) -> None:
        """Ask the recent prioritization fees of each market with claimed settlements,
        naming the token accounts they write (at low priority: a late answer only
        keeps the last price). ``only_new``: just the markets never asked yet."""
        if not isinstance(self.settings.fee_policy, domain.PercentilePriorityFee):
            return
        fills: dict[str, list[domain.Fill]] = {}
        for work in self._claims:
            fills.setdefault(work.market.market_id, []).append(work.fill)
        for market_id, market_fills in fills.items():
            if only_new and market_id in self._fees.markets:
                continue
            fees = self._fees.of(market_id)
            fees.fees_pending = fees.fees_pending or only_new  # cleared by the answer
            accounts = writable_token_accounts(market_fills)
            self._rpc.call(
                "getRecentPrioritizationFees",
                [accounts],
                reply_to_actor(self, _fees_of(market_id, len(accounts))),
                priority=Priority.LOW,
                deadline_s=self.settings.request_deadline_s,
            )

    def _on_fee_answer(self, answer: _Fees | _Simulated) -> None:
        if isinstance(answer, _Fees):
            self._fees.recent_fees_answered(answer.market_id, answer.accounts, answer.outcome)
            self._request_blockhash()
        else:
            self._fees.simulation_answered(answer.market_id, answer.outcome)

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
            refused=counters.refused,
            fee_cap_bound=self._fees.cap_bound,
            preflight_refused=counters.preflight_refused,
            fees={
                market_id: {**asdict(fees), "limit_asked": self._fees.limit_for(market_id)}
                for market_id, fees in self._fees.markets.items()
            },
            block_height=self._block_height,
            draining=self._drain is not None,
            full=self._full,
            slot_feed=asdict(self._slot_feed.state()) if self._slot_feed is not None else None,
            status_rounds=counters.status_rounds,
            rounds_on_slots=counters.rounds_on_slots,
            slot_cues=counters.slot_cues,
        )


def _traces(keys: tuple[str, ...], trace_of: Mapping[str, str | None]) -> tuple[str, ...]:
    """The stored traces of the settlements ``keys`` (signatures, marker addresses) stand for."""
    return tuple(dict.fromkeys(t for key in keys if (t := trace_of.get(key)) is not None))


def _statuses_of(
    chunk: tuple[str, ...], traces: tuple[str, ...]
) -> Callable[[RpcOutcome], _Statuses]:
    return lambda outcome: _Statuses(chunk, outcome, traces)


def _markers_of(
    chunk: tuple[str, ...], traces: tuple[str, ...]
) -> Callable[[RpcOutcome], _Markers]:
    return lambda outcome: _Markers(chunk, outcome, traces)


def _simulated_of(market_id: str) -> Callable[[RpcOutcome], _Simulated]:
    return lambda outcome: _Simulated(market_id, outcome)


def _fees_of(market_id: str, accounts: int) -> Callable[[RpcOutcome], _Fees]:
    return lambda outcome: _Fees(market_id, accounts, outcome)
