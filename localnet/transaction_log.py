"""Transactions that landed: their status, metadata, and indexes by address and slot."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from solders.account import Account
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import InnerInstruction
from solders.transaction_status import (
    TransactionErrorType,
    TransactionReturnData,
)

__all__ = ["LandedTransaction", "TransactionLog"]


class LandedTransaction(NamedTuple):
    """One transaction committed to the ledger, successful or not (fees were charged)."""

    signature: Signature
    transaction: VersionedTransaction
    slot: int
    index_in_slot: int
    block_time: int
    err: TransactionErrorType | None
    fee: int
    logs: tuple[str, ...]
    compute_units_consumed: int
    inner_instructions: tuple[tuple[InnerInstruction, ...], ...]
    return_data: TransactionReturnData | None
    account_keys: tuple[Pubkey, ...]
    writable_keys: frozenset[Pubkey]
    # The static keys' accounts around execution; balances are derived when asked for,
    # so that landing stays cheap.
    pre_accounts: tuple[Account | None, ...]
    post_accounts: tuple[Account | None, ...]
    memo: str | None
    compute_unit_price: int

    @property
    def pre_balances(self) -> tuple[int, ...]:
        return tuple(0 if account is None else account.lamports for account in self.pre_accounts)

    @property
    def post_balances(self) -> tuple[int, ...]:
        return tuple(0 if account is None else account.lamports for account in self.post_accounts)


class TransactionLog:
    """Landed transactions by signature, by address (oldest first) and by slot.

    Transactions older than the kept history are forgotten by :meth:`prune`,
    like a node whose ledger has been cleaned up; only the count remains.
    """

    def __init__(self) -> None:
        self._by_signature: dict[Signature, LandedTransaction] = {}
        self._by_address: dict[Pubkey, deque[LandedTransaction]] = {}
        self._by_slot: OrderedDict[int, list[LandedTransaction]] = OrderedDict()
        self._total = 0

    def add(self, landed: LandedTransaction) -> None:
        self._by_signature[landed.signature] = landed
        for key in dict.fromkeys(landed.account_keys):
            self._by_address.setdefault(key, deque()).append(landed)
        self._by_slot.setdefault(landed.slot, []).append(landed)
        self._total += 1

    def prune(self, oldest_kept_slot: int) -> None:
        """Forget every transaction that landed before ``oldest_kept_slot``."""
        while self._by_slot and next(iter(self._by_slot)) < oldest_kept_slot:
            _, forgotten = self._by_slot.popitem(last=False)
            for landed in forgotten:
                del self._by_signature[landed.signature]
                for key in dict.fromkeys(landed.account_keys):
                    self._forget_oldest(key, oldest_kept_slot)

    @property
    def total(self) -> int:
        """Every transaction that ever landed, forgotten ones included."""
        return self._total

    def get(self, signature: Signature) -> LandedTransaction | None:
        return self._by_signature.get(signature)

    def __contains__(self, signature: object) -> bool:
        return signature in self._by_signature

    def __len__(self) -> int:
        return len(self._by_signature)

    def _forget_oldest(self, key: Pubkey, oldest_kept_slot: int) -> None:
        history = self._by_address.get(key)
        while history and history[0].slot < oldest_kept_slot:
            history.popleft()
        if history is not None and not history:
            del self._by_address[key]

    def landed_after(self, slot: int) -> int:
        """How many kept transactions landed in a slot after ``slot``."""
        count = 0
        for at, landed in reversed(self._by_slot.items()):  # newest first: stop at ``slot``
            if at <= slot:
                break
            count += len(landed)
        return count

    def addresses(self) -> list[Pubkey]:
        """Every address a kept transaction names."""
        return list(self._by_address)

    def in_slot(self, slot: int) -> list[LandedTransaction]:
        return list(self._by_slot.get(slot, ()))

    def count_in_slot(self, slot: int) -> int:
        return len(self._by_slot.get(slot, ()))

    def for_address(
        self,
        address: Pubkey,
        newest_slot: int,
        limit: int,
        before: Signature | None = None,
        until: Signature | None = None,
        *,
        oldest_slot: int = 0,
    ) -> list[LandedTransaction]:
        """Newest first, as ``getSignaturesForAddress`` lists them.

        Starts below ``before`` (exclusive) and stops at ``until`` (exclusive) or at the
        first transaction older than ``oldest_slot``.
        """
        history: Sequence[LandedTransaction] = self._by_address.get(address, ())
        found: list[LandedTransaction] = []
        started = before is None
        for landed in reversed(history):
            if not started:
                started = landed.signature == before
                continue
            if landed.signature == until or len(found) >= limit or landed.slot < oldest_slot:
                break
            if landed.slot <= newest_slot:
                found.append(landed)
        return found

    def prioritization_fees(
        self, slots: Iterable[int], addresses: Sequence[Pubkey]
    ) -> list[tuple[int, int]]:
        """``(slot, fee)`` per slot: the lowest compute-unit price that landed in it.

        With addresses, only transactions that write one of them count, like
        Agave's per-account fee cache; a slot with none reports 0.
        """
        wanted = frozenset(addresses)
        fees: list[tuple[int, int]] = []
        for slot in slots:
            prices = [
                landed.compute_unit_price
                for landed in self._by_slot.get(slot, ())
                if not wanted or wanted & landed.writable_keys
            ]
            fees.append((slot, min(prices, default=0)))
        return fees
