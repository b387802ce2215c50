"""MarkerReclaimActor: the rent of settlement markers, back to the fee payer once safe.

Each landed settlement leaves a marker account (market/marker.py) holding
890,880 lamports of the market's fee payer. This actor closes them, many per
transaction (``TransferWithSeed`` of all their lamports), under the rules of
:mod:`market.marker_reclaim`: only when every attempt of the settlement is past
its ``last_valid_block_height`` by :data:`~market.marker.RECLAIM_MARGIN_BLOCKS`
at ``finalized``, the marker read at ``finalized`` by a view no older than the
one that gave that height.

* **Under the market's lease.** Like MatchActor it is a LockActor market
  listener (:class:`MarketsChanged`, :class:`LeaseLost`), and reclaims only the
  markers of the markets this node holds; every write after a decision is
  fenced by that lease's token (``storage.markers``). Why the market lease and
  not a key of its own: the market's holder already has that market's fee payer
  and settlement authority, the load is split the way markets are, and a
  rebalance hands markers over with their market (no second lease to balance,
  renew and lose). Two nodes reclaiming at once could not lose money anyway
  (the first reclaim takes every lamport, the second fails), only fees.
* **A round** every ``interval_s``: record the markers of newly confirmed
  settlements (``storage.discover_markers``); read ``getEpochInfo`` at
  finalized (``absoluteSlot`` and ``blockHeight`` together); read the markers
  worth checking with ``getMultipleAccounts`` at finalized and
  ``minContextSlot`` = that slot, and check each answer's context slot; judge
  each marker (:func:`market.marker_reclaim.judge_marker`); record those seen
  gone; for those to close, take a fresh blockhash (BlockhashActor), sign the
  transactions, write each ahead (``reclaiming``, signature, its
  ``last_valid_block_height``), and only then send it.
* **Crashes.** Nothing is in memory that the database does not have, except the
  bytes of the reclaims in flight (resent unchanged each round while this
  instance lives). A new instance finds ``reclaiming`` rows: gone at finalized
  means reclaimed, still there once the reclaim's height has passed means a new
  reclaim with a new blockhash. Lamports are counted by the one UPDATE that
  moves a row to ``reclaimed``.

Failure policy: a storage or RPC error ends the round, logged; the next round
starts afresh from the database and the chain. Nothing here fails the actor,
except the ``crash`` hook (crash points, for recovery tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from solders.hash import Hash
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import storage
from actors.blockhash import FreshBlockhash, GetBlockhash, Unavailable
from actors.lock_actor import LeaseLost, MarketsChanged, MessageSink, ResendMarkets
from actors.marker_reclaim_messages import (
    GetReclaimState,
    ReclaimSettings,
    ReclaimState,
    RoundEnded,
    RunRound,
)
from actors.rpc.client import RouterAddress, RpcClient, reply_to_actor, send_transaction_params
from actors.rpc.messages import Priority, RpcOutcome, RpcSuccess
from market.marker_reclaim import (
    Close,
    FinalizedView,
    Gone,
    MarkerFacts,
    Reclaimed,
    build_reclaim_transactions,
    judge_marker,
    parse_epoch_info,
    parse_marker_accounts,
)
from storage.markers import (
    MarkerRecord,
    ReclaimAhead,
    discover_markers,
    mark_gone,
    mark_reclaimed,
    markers_to_check,
    write_reclaims_ahead,
)
from supervision import Clock, CrankActor, SelfAddress
from supervision.crashpoints import crash_point

__all__ = [
    "GetReclaimState",
    "MarkerReclaimActor",
    "ReclaimSettings",
    "ReclaimState",
    "RoundEnded",
    "RunRound",
]

MAX_ACCOUNTS_PER_REQUEST = 100  # getMultipleAccounts' limit
MARKET_PREFIX = storage.MARKET_KEY_PREFIX


# Each answer names its round: one from a round abandoned (round_timeout_s) is ignored.
@dataclass(frozen=True)
class _Epoch:
    round_number: int
    outcome: RpcOutcome


@dataclass(frozen=True)
class _Accounts:
    round_number: int
    addresses: tuple[str, ...]
    outcome: RpcOutcome


@dataclass(frozen=True)
class _Blockhash:
    round_number: int
    answer: FreshBlockhash | Unavailable


@dataclass(frozen=True)
class _Sent:
    signature: str
    outcome: RpcOutcome


@dataclass
class _Round:
    number: int
    started_s: float
    view: FinalizedView | None = None
    markers: list[MarkerRecord] = field(default_factory=list)
    pending: int = 0
    seen: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # slot, lamports
    closes: dict[str, list[tuple[MarkerRecord, int]]] = field(default_factory=dict)
    markers_sent: int = 0
    transactions_sent: int = 0
    reclaimed: int = 0
    gone: int = 0


@dataclass
class _Counters:
    rounds: int = 0
    discovered: int = 0
    transactions_sent: int = 0
    resends: int = 0
    reclaimed: int = 0
    lamports_reclaimed: int = 0
    gone: int = 0


class MarkerReclaimActor(CrankActor):
    """See the module docstring. ``signers`` maps base58 public keys to keypairs (the
    markets' fee payers and settlement authorities); ``crash`` is called at the named
    crash points (``marker_reclaim_written``, ``marker_reclaim_sent``)."""

    def __init__(
        self,
        engine: Engine,
        router: RouterAddress,
        blockhash: RouterAddress,
        signers: Mapping[str, Keypair],
        *,
        lock: MessageSink | None = None,
        settings: ReclaimSettings | None = None,
        crash: Callable[[str], None] = crash_point,
        listeners: tuple[Callable[[RoundEnded], None], ...] = (),
        name: str = "reclaim",
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.settings = settings or ReclaimSettings()
        self._engine = engine
        self._rpc = RpcClient(router)
        self._blockhash = blockhash
        self._signers = dict(signers)
        self._lock = lock
        self._crash = crash
        self._listeners = listeners
        self._leases: dict[str, storage.Lease] = {}
        self._round: _Round | None = None
        # Reclaims sent by this instance, by signature: bytes, last valid block height.
        self._in_flight: dict[str, tuple[bytes, int]] = {}
        self._last_view: FinalizedView | None = None
        self.counters = _Counters()

    def on_start(self) -> None:
        if self._lock is not None:
            self._lock.tell(ResendMarkets(SelfAddress(self)))
        self.timers.send_periodically("round", self.settings.interval_s, RunRound())

    def on_receive(self, message: Any) -> Any:
        match message:
            case MarketsChanged(gained, lost):
                self._markets_changed(gained, lost)
            case LeaseLost(key, fencing_token, _reason):
                self._lease_lost(key, fencing_token)
            case RunRound():
                self._start_round()
            case _Epoch() | _Accounts() | _Blockhash() if not self._current(message):
                pass  # an answer to an abandoned round
            case _Epoch(_, outcome):
                self._on_epoch(outcome)
            case _Accounts(_, addresses, outcome):
                self._on_accounts(addresses, outcome)
            case _Blockhash(_, answer):
                self._on_blockhash(answer)
            case _Sent(signature, outcome):
                self._on_sent(signature, outcome)
            case GetReclaimState():
                return self._state()
            case _:
                logger.bind(action="reclaim.unknown_message").warning(
                    f"{self.name} ignored a {type(message).__name__}"
                )
        return None

    def _current(self, answer: _Epoch | _Accounts | _Blockhash) -> bool:
        return self._round is not None and self._round.number == answer.round_number

    # -- leases ------------------------------------------------------------------------

    def _markets_changed(self, gained: tuple[storage.Lease, ...], lost: tuple[str, ...]) -> None:
        for market in lost:
            self._leases.pop(market, None)
        for lease in gained:
            self._leases[storage.market_id(lease.key)] = lease

    def _lease_lost(self, key: str, fencing_token: int) -> None:
        if not key.startswith(MARKET_PREFIX):
            return
        market = storage.market_id(key)
        held = self._leases.get(market)
        if held is not None and held.fencing_token <= fencing_token:
            del self._leases[market]

    def _write_failed(self, market: str, error: storage.StorageError) -> None:
        if isinstance(error, storage.LeaseLost):
            self._leases.pop(market, None)  # stop acting on it now; LockActor says the rest
        logger.bind(action="reclaim.write_failed", market_id=market).warning(
            f"a marker write of {market} failed, next round: {error}"
        )

    # -- a round ------------------------------------------------------------------------

    def _start_round(self) -> None:
        now_s = self.clock.monotonic()
        if self._round is not None:
            if now_s - self._round.started_s < self.settings.round_timeout_s:
                return
            logger.bind(action="reclaim.round_abandoned").warning("a reclaim round never ended")
        self._round = round_ = _Round(self.counters.rounds + 1, now_s)
        if not self._leases:
            return self._end_round("no market held")
        self.counters.rounds = round_.number
        self._resend_in_flight()
        try:
            self.counters.discovered += discover_markers(self._engine, self._leases)
        except storage.StorageError as error:
            logger.bind(action="reclaim.discover_failed").warning(f"discovery failed: {error}")
        self._rpc.call(
            "getEpochInfo",
            [{"commitment": "finalized"}],
            reply_to_actor(self, lambda outcome: _Epoch(round_.number, outcome)),
            priority=Priority.LOW,
            deadline_s=self.settings.request_deadline_s,
        )
        return None

    def _end_round(self, why: str | None = None) -> None:
        round_, self._round = self._round, None
        if why is not None:
            logger.bind(action="reclaim.round_ended").info(f"reclaim round ended: {why}")
        if round_ is None:
            return
        view = round_.view
        ended = RoundEnded(
            len(round_.seen),
            round_.markers_sent,
            round_.transactions_sent,
            round_.reclaimed,
            round_.gone,
            view.slot if view else None,
            view.block_height if view else None,
            why,
        )
        for listener in self._listeners:
            listener(ended)

    def _on_epoch(self, outcome: RpcOutcome) -> None:
        round_ = self._round
        if round_ is None:
            return
        if not isinstance(outcome, RpcSuccess):
            return self._end_round(f"no finalized height: {outcome}")
        try:
            view = parse_epoch_info(outcome.result)
        except ValueError as error:
            return self._end_round(str(error))
        round_.view = self._last_view = view
        try:
            round_.markers = markers_to_check(
                self._engine, self._leases, view.block_height, self.settings.markers_per_round
            )
        except storage.StorageError as error:
            return self._end_round(f"markers could not be read: {error}")
        if not round_.markers:
            return self._end_round()
        addresses = [marker.address for marker in round_.markers]
        config = {"commitment": "finalized", "minContextSlot": view.slot, "encoding": "base64"}
        for start in range(0, len(addresses), MAX_ACCOUNTS_PER_REQUEST):
            chunk = tuple(addresses[start : start + MAX_ACCOUNTS_PER_REQUEST])
            round_.pending += 1
            self._rpc.call(
                "getMultipleAccounts",
                [list(chunk), config],
                reply_to_actor(self, _accounts_of(round_.number, chunk)),
                priority=Priority.LOW,
                deadline_s=self.settings.request_deadline_s,
            )
        return None

    def _on_accounts(self, addresses: tuple[str, ...], outcome: RpcOutcome) -> None:
        round_ = self._round
        if round_ is None or round_.view is None:
            return
        round_.pending -= 1
        if isinstance(outcome, RpcSuccess):
            try:
                slot, found = parse_marker_accounts(addresses, outcome.result)
            except ValueError as error:
                logger.bind(action="reclaim.bad_accounts_answer").warning(str(error))
            else:
                round_.seen.update((address, (slot, found[address])) for address in addresses)
        else:
            logger.bind(action="reclaim.accounts_failed").info(f"markers not read: {outcome}")
        if round_.pending == 0:
            self._judge(round_, round_.view)

    def _judge(self, round_: _Round, view: FinalizedView) -> None:
        finished: dict[tuple[str, str], list[MarkerRecord]] = {}
        for marker in round_.markers:
            if marker.address not in round_.seen:
                continue  # its chunk was not answered: next round
            slot, lamports = round_.seen[marker.address]
            facts = MarkerFacts(
                marker.state,
                marker.attempt_last_valid_block_heights,
                marker.reclaim_last_valid_block_height,
            )
            verdict = judge_marker(facts, view, slot, lamports)
            if isinstance(verdict, Close):
                round_.closes.setdefault(marker.market_id, []).append((marker, verdict.lamports))
            elif isinstance(verdict, Reclaimed | Gone):
                kind = "reclaimed" if isinstance(verdict, Reclaimed) else "gone"
                finished.setdefault((marker.market_id, kind), []).append(marker)
        for (market, kind), markers in sorted(finished.items()):
            slot = max(view.slot, *_slots(round_, markers))
            done = self._record_finished(market, kind, markers, slot)
            if kind == "reclaimed":
                round_.reclaimed += done
            else:
                round_.gone += done
        if not round_.closes:
            return self._end_round()
        number = round_.number
        self._blockhash.tell(
            GetBlockhash(reply_to_actor(self, lambda answer: _Blockhash(number, answer)))
        )
        return None

    def _record_finished(
        self, market: str, kind: str, markers: list[MarkerRecord], slot: int
    ) -> int:
        lease = self._leases.get(market)
        if lease is None:
            return 0
        ids = [marker.settlement_id for marker in markers]
        write = mark_reclaimed if kind == "reclaimed" else mark_gone
        try:
            done = set(write(self._engine, lease, market, ids, slot))
        except storage.StorageError as error:
            self._write_failed(market, error)
            return 0
        for marker in markers:
            if marker.settlement_id not in done:
                continue
            if marker.reclaim_signature is not None:
                self._in_flight.pop(marker.reclaim_signature, None)
            if kind == "reclaimed":
                self.counters.reclaimed += 1
                self.counters.lamports_reclaimed += marker.lamports
            else:
                self.counters.gone += 1
                logger.bind(
                    action="reclaim.marker_gone",
                    market_id=market,
                    address=marker.address,
                    settlement_id=marker.settlement_id,
                ).warning(f"marker {marker.address} is gone though we never reclaimed it")
        if kind == "reclaimed" and done:
            logger.bind(action="reclaim.reclaimed", market_id=market, count=len(done)).info(
                f"{len(done)} markers of {market} reclaimed"
            )
        return len(done)

    # -- closing -----------------------------------------------------------------------

    def _on_blockhash(self, answer: FreshBlockhash | Unavailable) -> None:
        round_ = self._round
        if round_ is None:
            return
        if isinstance(answer, Unavailable):
            return self._end_round(f"no blockhash: {answer.reason}")
        for market, closes in sorted(round_.closes.items()):
            self._close_market(round_, market, closes, answer)
        return self._end_round()

    def _close_market(
        self,
        round_: _Round,
        market_id: str,
        closes: list[tuple[MarkerRecord, int]],
        fresh: FreshBlockhash,
    ) -> None:
        lease = self._leases.get(market_id)
        try:
            market = storage.get_market(self._engine, market_id)
        except storage.StorageError as error:
            return self._write_failed(market_id, error)
        if lease is None or market is None:
            return None
        fee_payer = self._signers.get(str(market.fee_payer))
        authority = self._signers.get(str(market.settlement_authority))
        if fee_payer is None or authority is None:
            logger.bind(action="reclaim.no_signer", market_id=market_id).error(
                f"this node lacks the fee payer or settlement authority of {market_id}"
            )
            return None
        by_fill = {marker.fill_id: marker for marker, _ in closes}
        try:
            transactions = build_reclaim_transactions(
                [(marker.fill_id, marker.address, lamports) for marker, lamports in closes],
                fee_payer=fee_payer,
                settlement_authority=authority,
                recent_blockhash=Hash.from_string(fresh.blockhash),
            )
        except ValueError as error:
            logger.bind(action="reclaim.refused", market_id=market_id).error(str(error))
            return None
        for transaction in transactions:
            ahead = [
                ReclaimAhead(
                    by_fill[fill_id].settlement_id,
                    transaction.signature,
                    fresh.last_valid_block_height,
                    lamports,
                )
                for fill_id, lamports in transaction.lamports_by_fill
            ]
            try:
                written = write_reclaims_ahead(self._engine, lease, market_id, ahead)
            except storage.StorageError as error:
                return self._write_failed(market_id, error)
            if len(written) != len(ahead):
                continue  # a marker moved on under us (reclaimed meanwhile): next round
            for fill_id, _ in transaction.lamports_by_fill:
                replaced = by_fill[fill_id].reclaim_signature
                if replaced is not None:
                    self._in_flight.pop(replaced, None)  # expired: judged so this round
            self._crash("marker_reclaim_written")
            self._in_flight[transaction.signature] = (
                transaction.raw_bytes,
                fresh.last_valid_block_height,
            )
            self._send(transaction.signature, transaction.raw_bytes)
            self.counters.transactions_sent += 1
            round_.transactions_sent += 1
            round_.markers_sent += len(written)
            self._crash("marker_reclaim_sent")
        return None

    def _send(self, signature: str, raw: bytes) -> None:
        self._rpc.call(
            "sendTransaction",
            send_transaction_params(raw, skip_preflight=True),
            reply_to_actor(self, lambda outcome: _Sent(signature, outcome)),
            priority=Priority.NORMAL,
            deadline_s=self.settings.request_deadline_s,
        )

    def _resend_in_flight(self) -> None:
        """The bytes of reclaims still in flight, unchanged (landed ones are deduplicated
        by the cluster; expired ones are refused, and replaced by the next round)."""
        view = self._last_view
        for signature, (raw, last_valid_block_height) in list(self._in_flight.items()):
            if view is not None and view.block_height > last_valid_block_height:
                del self._in_flight[signature]  # can no longer land: forget its bytes
                continue
            self.counters.resends += 1
            self._send(signature, raw)

    def _on_sent(self, signature: str, outcome: RpcOutcome) -> None:
        if not isinstance(outcome, RpcSuccess):
            logger.bind(action="reclaim.send_failed", signature=signature).info(
                f"sending reclaim {signature} failed; judged again next round: {outcome}"
            )

    def _state(self) -> ReclaimState:
        counters, view = self.counters, self._last_view
        return ReclaimState(
            tuple(sorted(self._leases)),
            counters.rounds,
            counters.discovered,
            counters.transactions_sent,
            counters.resends,
            counters.reclaimed,
            counters.lamports_reclaimed,
            counters.gone,
            len(self._in_flight),
            view.slot if view else None,
            view.block_height if view else None,
        )


def _accounts_of(number: int, chunk: tuple[str, ...]) -> Callable[[RpcOutcome], _Accounts]:
    return lambda outcome: _Accounts(number, chunk, outcome)


def _slots(round_: _Round, markers: list[MarkerRecord]) -> list[int]:
    return [round_.seen[marker.address][0] for marker in markers]
