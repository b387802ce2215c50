"""One LiteSVM ledger that produces slots like a cluster.

Every endpoint of a localnet reads and writes this object; its lock makes each
call atomic, so the event loop thread, the slot timer and test code may all use
it. A slot is produced by :meth:`Ledger.advance_slots`: the clock moves, the
transactions due in that slot land in arrival order, and the slot's blockhash
joins the window.
"""

from __future__ import annotations

import enum
import heapq
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from loguru import logger
from solders.account import Account
from solders.clock import Clock
from solders.epoch_schedule import EpochSchedule
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.token.state import Mint
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, SimulateResult
from spl.token.constants import TOKEN_PROGRAM_ID, WRAPPED_SOL_MINT

from localnet.account_history import UNCHANGED, AccountHistory
from localnet.blockhashes import BlockhashWindow, SlotBlockhash
from localnet.commitment import ChainTip, CommitmentDepths
from localnet.config import LocalnetConfig
from localnet.confined import ThreadConfined
from localnet.errors import FixtureFailed
from localnet.landing import is_dropped, landed_transaction
from localnet.message_facts import MessageFacts
from localnet.nonces import (
    DurableNonceUse,
    advance_target,
    advanced_nonce_data,
    durable_nonce_use,
)
from localnet.tokens import parse_mint
from localnet.transaction_log import LandedTransaction, TransactionLog
from localnet.tx_errors import describe_transaction_error

__all__ = ["EpochPosition", "Ledger", "SubmitOutcome"]

# getRecentPrioritizationFees looks back this many slots, as Agave's fee cache does.
PRIORITIZATION_FEE_SLOTS = 150


class SubmitOutcome(enum.Enum):
    """What :meth:`Ledger.submit` did with a transaction."""

    QUEUED = "queued"
    ALREADY_PENDING = "already_pending"
    ALREADY_LANDED = "already_landed"


class EpochPosition(NamedTuple):
    epoch: int
    slot_index: int
    slots_in_epoch: int


class _Pending(NamedTuple):
    """A transaction waiting for its slot; ordered by slot, then by arrival."""

    land_at_slot: int
    arrival: int
    transaction: VersionedTransaction
    signatures_verified: bool
    held: bool  # held back by a late-landing endpoint, not yet with the leader


def _new_svm() -> LiteSVM:
    svm = LiteSVM().with_sigverify(False).with_blockhash_check(False)
    svm.with_transaction_history(0)
    return svm


class Ledger:
    """LiteSVM plus the slots, blockhash window, history and status a cluster keeps."""

    def __init__(self, config: LocalnetConfig, wall_clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._slot_produced = threading.Condition(self._lock)
        self._depths = CommitmentDepths(
            config.confirmation_depth_slots, config.finalization_depth_slots
        )
        # Signatures are verified once, at the edge, as a validator's sigverify stage does;
        # the blockhash check is the window's job, since LiteSVM only knows its latest hash.
        # On a thread of its own: see localnet.confined for why.
        self._confined: ThreadConfined[LiteSVM] = ThreadConfined(_new_svm, name="localnet-litesvm")
        self._svm = self._confined.proxy
        self._window = BlockhashWindow(config.state_retention_slots)
        self._history = AccountHistory()
        self._log = TransactionLog()
        # A heap: held transactions land long after ones received later.
        self._pending: list[_Pending] = []
        self._arrivals = 0
        self._pending_signatures: set[Signature] = set()
        self._held_signatures: set[Signature] = set()
        self._block_times: dict[int, int] = {}
        self._faucet = Keypair()
        # The one validator's identity: leader of every slot (getSlotLeader, getClusterNodes).
        self.identity = Keypair().pubkey()
        self._slot = config.genesis_slot
        self._slot_listeners: list[Callable[[int], None]] = []
        self._genesis()

    def adopt_current_thread(self) -> None:
        """The calling thread (localnet's event loop) may call LiteSVM directly."""
        self._confined.adopt_current_thread()

    def release_current_thread(self) -> None:
        self._confined.release_current_thread()

    def close(self) -> None:
        """Stop LiteSVM's thread (idempotent); the ledger is unusable afterwards."""
        self._confined.close()

    # --- time -------------------------------------------------------------

    @property
    def slot(self) -> int:
        """The newest processed slot."""
        with self._lock:
            return self._slot

    @property
    def block_height(self) -> int:
        with self._lock:
            return self.block_height_of(self._slot)

    def block_height_of(self, slot: int) -> int:
        """Every slot produces a block, so block height counts slots since genesis."""
        return slot - self.config.genesis_slot

    def tip(self, lag_slots: int = 0) -> ChainTip:
        """The commitment slots as an endpoint ``lag_slots`` behind sees them now."""
        with self._lock:
            return ChainTip.at(self._slot - lag_slots, self._depths, self.config.genesis_slot)

    def advance_slots(self, count: int = 1) -> int:
        """Produce ``count`` slots; returns the new processed slot."""
        with self._lock:
            for _ in range(count):
                self._produce_slot()
            self._slot_produced.notify_all()
            slot = self._slot
        self._tell_listeners(slot)
        return slot

    def add_slot_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(slot)`` (on the producing thread, outside the lock) after each
        batch of produced slots or fixture landing; it must not block (PubSub hands the
        call to its event loop)."""
        with self._lock:
            self._slot_listeners.append(listener)

    def remove_slot_listener(self, listener: Callable[[int], None]) -> None:
        with self._lock:
            if listener in self._slot_listeners:
                self._slot_listeners.remove(listener)

    def _tell_listeners(self, slot: int) -> None:
        with self._lock:
            listeners = list(self._slot_listeners)
        for listener in listeners:
            listener(slot)

    def wait_for_slot(self, slot: int, timeout_s: float) -> bool:
        """Block until ``slot`` is processed or ``timeout_s`` passes; True if reached."""
        with self._slot_produced:
            return self._slot_produced.wait_for(lambda: self._slot >= slot, timeout_s)

    def block_time(self, slot: int) -> int:
        with self._lock:
            return self._block_times.get(slot, int(self._wall_clock()))

    def epoch_position(self, slot: int) -> EpochPosition:
        with self._lock:
            schedule = self._svm.get_epoch_schedule()
        epoch, slot_index = schedule.get_epoch_and_slot_index(slot)
        return EpochPosition(epoch, slot_index, schedule.get_slots_in_epoch(epoch))

    # --- blockhashes ------------------------------------------------------

    def blockhash_at(self, slot: int) -> SlotBlockhash:
        """The blockhash slot ``slot`` produced (or the newest known before it)."""
        with self._lock:
            return self._window.at_or_before(slot)

    def slot_blockhash(self, slot: int) -> SlotBlockhash | None:
        """The blockhash ``slot`` produced, if still retained (``state_retention_slots``)."""
        with self._lock:
            return self._window.of_slot(slot)

    @property
    def genesis_hash(self) -> Hash:
        """The hash of the genesis slot, fixed for this ledger's life (getGenesisHash)."""
        return self._genesis_hash

    def block_time_of(self, slot: int) -> int | None:
        """The unix time slot ``slot`` was produced at, while it is remembered."""
        with self._lock:
            return self._block_times.get(slot)

    def epoch_schedule(self) -> EpochSchedule:
        with self._lock:
            schedule: EpochSchedule = self._svm.get_epoch_schedule()
            return schedule

    def known_addresses(self) -> list[Pubkey]:
        """The faucet and every address a kept transaction named (getLargestAccounts'
        universe: LiteSVM cannot list every account)."""
        with self._lock:
            return [self._faucet.pubkey(), *self._log.addresses()]

    def blockhash_valid(self, blockhash: Hash, block_height: int) -> bool:
        with self._lock:
            return self._window.is_valid(blockhash, block_height)

    def processable(self, transaction: VersionedTransaction, block_height: int) -> bool:
        """True if a bank at ``block_height`` would process ``transaction``'s age: its
        blockhash is in the window, or it is a valid durable-nonce transaction."""
        with self._lock:
            if self._window.is_valid(transaction.message.recent_blockhash, block_height):
                return True
            return self._nonce_use(transaction) is not None

    def _nonce_use(self, transaction: VersionedTransaction) -> DurableNonceUse | None:
        address = advance_target(transaction)
        if address is None:
            return None
        account = self._svm.get_account(address)
        return durable_nonce_use(transaction, account, self._svm.latest_blockhash())

    def blockhash_info(self, blockhash: Hash) -> SlotBlockhash | None:
        with self._lock:
            return self._window.lookup(blockhash)

    # --- transactions -----------------------------------------------------

    def submit(
        self, transaction: VersionedTransaction, *, signatures_verified: bool
    ) -> SubmitOutcome:
        """Queue ``transaction`` to land ``landing_delay_slots`` from now, once only."""
        signature = transaction.signatures[0]
        with self._lock:
            if signature in self._log:
                return SubmitOutcome.ALREADY_LANDED
            if signature in self._pending_signatures:
                return SubmitOutcome.ALREADY_PENDING
            land_at = self._slot + self.config.landing_delay_slots
            self._queue(transaction, land_at, signatures_verified, held=False)
            return SubmitOutcome.QUEUED

    def hold(
        self, transaction: VersionedTransaction, last_blocks: int, *, signatures_verified: bool
    ) -> SubmitOutcome:
        """Queue ``transaction`` to land only in the last ``last_blocks`` block heights of
        its blockhash's validity (a late-landing endpoint), once only.

        A transaction held here is not "pending" for :meth:`submit`: the same bytes sent
        through another endpoint reach the leader at once, and the held copy, when its
        time comes, is dropped as already processed. An unknown blockhash is dropped now.
        """
        signature = transaction.signatures[0]
        with self._lock:
            if signature in self._log:
                return SubmitOutcome.ALREADY_LANDED
            if signature in self._held_signatures:
                return SubmitOutcome.ALREADY_PENDING
            produced = self._window.lookup(transaction.message.recent_blockhash)
            if produced is None:
                _log_dropped(signature, self._slot, "held with an unknown blockhash")
                return SubmitOutcome.QUEUED
            late_height = produced.last_valid_block_height - last_blocks + 1
            land_at = max(
                self.config.genesis_slot + late_height,
                self._slot + self.config.landing_delay_slots,
            )
            self._queue(transaction, land_at, signatures_verified, held=True)
            logger.bind(
                action="localnet.transaction_held",
                signature=str(signature),
                land_at_slot=land_at,
                last_valid_block_height=produced.last_valid_block_height,
            ).debug("transaction held for late landing")
            return SubmitOutcome.QUEUED

    def _queue(
        self, transaction: VersionedTransaction, land_at: int, verified: bool, *, held: bool
    ) -> None:
        self._arrivals += 1
        heapq.heappush(
            self._pending, _Pending(land_at, self._arrivals, transaction, verified, held)
        )
        (self._held_signatures if held else self._pending_signatures).add(transaction.signatures[0])

    def execute_now(self, transaction: VersionedTransaction) -> LandedTransaction:
        """Land ``transaction`` in the current slot at once (fixtures); raises if dropped."""
        with self._lock:
            if not all(transaction.verify_with_results()):
                raise FixtureFailed("transaction signature verification failure")
            blockhash = transaction.message.recent_blockhash
            if not self._window.is_valid(blockhash, self.block_height_of(self._slot)):
                raise FixtureFailed("Blockhash not found")
            landed = self._land(transaction, self._slot)
            if landed is None:
                raise FixtureFailed(f"transaction {transaction.signatures[0]} was dropped")
            self._slot_produced.notify_all()
        self._tell_listeners(landed.slot)
        return landed

    def simulate(self, transaction: VersionedTransaction) -> SimulateResult:
        with self._lock:
            result: SimulateResult = self._svm.simulate_transaction(transaction)
            return result

    def landed(self, signature: Signature) -> LandedTransaction | None:
        with self._lock:
            return self._log.get(signature)

    def landed_in_slot(self, slot: int) -> list[LandedTransaction]:
        """The transactions that landed in ``slot``, in order (empty once forgotten)."""
        with self._lock:
            return self._log.in_slot(slot)

    def is_pending(self, signature: Signature) -> bool:
        with self._lock:
            return signature in self._pending_signatures

    def transaction_count(self, slot: int | None = None) -> int:
        """Transactions landed so far, or by the end of ``slot`` (a lagging endpoint's)."""
        with self._lock:
            if slot is None:
                return self._log.total
            return self._log.total - self._log.landed_after(slot)

    def signatures_for(
        self,
        address: Pubkey,
        newest_slot: int,
        limit: int,
        before: Signature | None = None,
        until: Signature | None = None,
        *,
        oldest_slot: int = 0,
    ) -> list[LandedTransaction]:
        with self._lock:
            return self._log.for_address(
                address, newest_slot, limit, before, until, oldest_slot=oldest_slot
            )

    def prioritization_fees(
        self, newest_slot: int, addresses: Sequence[Pubkey]
    ) -> list[tuple[int, int]]:
        oldest = max(newest_slot - PRIORITIZATION_FEE_SLOTS + 1, self.config.genesis_slot)
        with self._lock:
            return self._log.prioritization_fees(range(oldest, newest_slot + 1), addresses)

    def faucet_transfer(self, recipient: Pubkey, lamports: int) -> VersionedTransaction:
        """A signed transfer from the faucet, on the newest blockhash (``requestAirdrop``)."""
        with self._lock:
            blockhash = self._window.at_or_before(self._slot).blockhash
        instruction = transfer(
            TransferParams(
                from_pubkey=self._faucet.pubkey(), to_pubkey=recipient, lamports=lamports
            )
        )
        legacy = Transaction.new_signed_with_payer(
            [instruction], self._faucet.pubkey(), [self._faucet], blockhash
        )
        return VersionedTransaction.from_legacy(legacy)

    # --- accounts ---------------------------------------------------------

    def account(self, address: Pubkey, slot: int) -> Account | None:
        """``address`` as it was once ``slot`` was processed; ``None`` if it did not exist."""
        with self._lock:
            if slot < self._slot:
                old = self._history.at(address, slot)
                if old is not UNCHANGED:
                    return _existing(old)  # type: ignore[arg-type]  # UNCHANGED excluded above
            return _existing(self._svm.get_account(address))

    def program_accounts(self, program_id: Pubkey, slot: int) -> list[tuple[Pubkey, Account]]:
        """Every account ``program_id`` owned once ``slot`` was processed."""
        with self._lock:
            accounts = dict(self._svm.get_program_accounts(program_id))
            if slot < self._slot:
                for address in list(self._history.changed_since(slot)):
                    old = self._history.at(address, slot)
                    if isinstance(old, Account) and old.owner == program_id and old.lamports:
                        accounts[address] = old
                    else:
                        accounts.pop(address, None)
            return [(address, account) for address, account in accounts.items() if account.lamports]

    @property
    def tracked_accounts(self) -> int:
        """How many accounts have history kept for reads at older slots (bounded by retention)."""
        with self._lock:
            return len(self._history)

    def mint_decimals(self, mint: Pubkey) -> int:
        """Decimals of ``mint`` now (they never change), 0 if it is not a mint."""
        parsed = parse_mint(self.account(mint, self.slot))
        return 0 if parsed is None else int(parsed.decimals)

    def minimum_balance_for_rent_exemption(self, data_len: int) -> int:
        with self._lock:
            return int(self._svm.minimum_balance_for_rent_exemption(data_len))

    # --- production -------------------------------------------------------

    def _genesis(self) -> None:
        self._svm.set_account(
            self._faucet.pubkey(),
            Account(self.config.faucet_lamports, b"", SYSTEM_PROGRAM_ID, False, 0),
        )
        # A cluster's genesis holds SPL Token's native mint (wrapped SOL: no authority,
        # 9 decimals), so getTokenSupply and wrapping SOL work from slot 0.
        native_mint = bytes(Mint(None, 0, 9, True, None))
        rent = self._svm.minimum_balance_for_rent_exemption(len(native_mint))
        self._svm.set_account(
            WRAPPED_SOL_MINT, Account(rent, native_mint, TOKEN_PROGRAM_ID, False, 0)
        )
        self._set_clock(self._slot)
        self._seal_slot()
        self._genesis_hash = self._window.at_or_before(self._slot).blockhash

    def _produce_slot(self) -> None:
        self._slot += 1
        self._set_clock(self._slot)
        while self._pending and self._pending[0].land_at_slot <= self._slot:
            pending = heapq.heappop(self._pending)
            signature = pending.transaction.signatures[0]
            (self._held_signatures if pending.held else self._pending_signatures).discard(signature)
            self._land_pending(pending)
        self._svm.expire_blockhash()
        self._seal_slot()

    def _set_clock(self, slot: int) -> None:
        now = int(self._wall_clock())
        self._block_times[slot] = now
        epoch = self._svm.get_epoch_schedule().get_epoch(slot)
        self._svm.set_clock(Clock(slot, now, epoch, epoch + 1, now))

    def _seal_slot(self) -> None:
        """Record this slot's blockhash and forget what no read can need any more."""
        slot = self._slot
        self._window.record(self._svm.latest_blockhash(), slot, self.block_height_of(slot))
        oldest_readable = slot - self.config.state_retention_slots
        self._history.prune(oldest_readable)
        self._log.prune(slot - self.config.transaction_history_slots + 1)
        self._block_times.pop(oldest_readable - self.config.status_cache_slots, None)
        logger.bind(action="localnet.slot_produced", slot=slot).trace("slot produced")

    def _land_pending(self, pending: _Pending) -> None:
        transaction = pending.transaction
        signature = transaction.signatures[0]
        if not self.processable(transaction, self.block_height_of(self._slot)):
            _log_dropped(signature, self._slot, "blockhash expired")
            return
        if not pending.signatures_verified and not all(transaction.verify_with_results()):
            _log_dropped(signature, self._slot, "signature verification failure")
            return
        self._land(transaction, self._slot)

    def _advance_nonce(self, nonce_use: DurableNonceUse, bank_blockhash: Hash) -> None:
        """A failed durable-nonce transaction still advances its nonce, as a bank does
        (LiteSVM rolls the whole transaction back)."""
        account = self._svm.get_account(nonce_use.address)
        if account is not None:
            self._svm.set_account(nonce_use.address, _advanced(account, bank_blockhash))

    def _land(self, transaction: VersionedTransaction, slot: int) -> LandedTransaction | None:
        signature = transaction.signatures[0]
        if signature in self._log:
            _log_dropped(signature, slot, "already processed")
            return None
        facts = MessageFacts.of(transaction)
        keys = facts.keys
        before = [self._svm.get_account(key) for key in keys]
        in_window = self._window.is_valid(
            transaction.message.recent_blockhash, self.block_height_of(slot)
        )
        nonce_use = None if in_window else self._nonce_use(transaction)
        bank_blockhash = self._svm.latest_blockhash()
        execution = self._svm.send_transaction(transaction)
        if isinstance(execution, FailedTransactionMetadata) and is_dropped(execution.err()):
            _log_dropped(signature, slot, describe_transaction_error(execution.err()))
            return None
        if nonce_use is not None and isinstance(execution, FailedTransactionMetadata):
            self._advance_nonce(nonce_use, bank_blockhash)
        after = [self._svm.get_account(key) for key in keys]
        landed = landed_transaction(
            transaction=transaction,
            facts=facts,
            execution=execution,
            before=before,
            after=after,
            slot=slot,
            index_in_slot=self._log.count_in_slot(slot),
            block_time=self._block_times.get(slot, 0),
        )
        for key, old, new in zip(keys, before, after, strict=True):
            if key in facts.writable and old != new:
                self._history.record(slot, key, old, new)
        self._log.add(landed)
        logger.bind(
            action="localnet.transaction_landed",
            signature=str(signature),
            slot=slot,
            err=None if landed.err is None else describe_transaction_error(landed.err),
        ).debug("transaction landed")
        return landed


def _advanced(account: Account, bank_blockhash: Hash) -> Account:
    data = advanced_nonce_data(account, bank_blockhash)
    return Account(account.lamports, data, account.owner, account.executable, account.rent_epoch)


def _existing(account: Account | None) -> Account | None:
    """RPC reports an account with no lamports as absent."""
    return account if account is not None and account.lamports else None


def _log_dropped(signature: Signature, slot: int, reason: str) -> None:
    logger.bind(
        action="localnet.transaction_dropped", signature=str(signature), slot=slot, reason=reason
    ).debug("transaction dropped")
