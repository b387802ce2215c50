"""Turning one LiteSVM execution into a :class:`LandedTransaction`.

Like a leader, the ledger drops a transaction whose error means it could not
even be charged a fee (bad signature, unknown blockhash, no fee payer...);
anything that failed later is committed with its error, and its fee paid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from solders.account import Account
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import (
    TransactionErrorFieldless,
    TransactionErrorType,
    TransactionReturnData,
)

from localnet.message_facts import MessageFacts
from localnet.transaction_log import LandedTransaction
from localnet.tx_errors import error_name

__all__ = ["Execution", "is_dropped", "landed_transaction"]

# Errors that keep a transaction out of any block: nothing is charged or recorded.
_DROPPED: Final = frozenset(
    {
        "AccountInUse",
        "AccountLoadedTwice",
        "AccountNotFound",
        "InsufficientFundsForFee",
        "InvalidAccountForFee",
        "AlreadyProcessed",
        "BlockhashNotFound",
        "MissingSignatureForFee",
        "InvalidAccountIndex",
        "SignatureFailure",
        "SanitizeFailure",
        "ClusterMaintenance",
        "UnsupportedVersion",
        "TooManyAccountLocks",
        "AddressLookupTableNotFound",
        "InvalidAddressLookupTableOwner",
        "InvalidAddressLookupTableData",
        "InvalidAddressLookupTableIndex",
        "WouldExceedMaxBlockCostLimit",
        "WouldExceedMaxAccountCostLimit",
        "WouldExceedAccountDataBlockLimit",
        "WouldExceedMaxVoteCostLimit",
        "WouldExceedAccountDataTotalLimit",
        "ResanitizationNeeded",
        "CommitCancelled",
    }
)

Execution = TransactionMetadata | FailedTransactionMetadata


def is_dropped(error: TransactionErrorType) -> bool:
    """True if a transaction failing with ``error`` never makes it into a block."""
    return isinstance(error, TransactionErrorFieldless) and error_name(error) in _DROPPED


def landed_transaction(
    *,
    transaction: VersionedTransaction,
    facts: MessageFacts,
    execution: Execution,
    before: Sequence[Account | None],
    after: Sequence[Account | None],
    slot: int,
    index_in_slot: int,
    block_time: int,
) -> LandedTransaction:
    """The record of ``transaction`` landing; ``before``/``after`` follow ``facts.keys``."""
    if isinstance(execution, FailedTransactionMetadata):
        meta, err = execution.meta(), execution.err()
    else:
        meta, err = execution, None
    return LandedTransaction(
        signature=transaction.signatures[0],
        transaction=transaction,
        slot=slot,
        index_in_slot=index_in_slot,
        block_time=block_time,
        err=err,
        fee=meta.fee(),
        logs=tuple(meta.logs()),
        compute_units_consumed=meta.compute_units_consumed(),
        inner_instructions=tuple(tuple(inner) for inner in meta.inner_instructions()),
        return_data=_return_data(meta),
        account_keys=facts.keys,
        writable_keys=facts.writable,
        pre_accounts=tuple(before),
        post_accounts=tuple(after),
        memo=facts.memo,
        compute_unit_price=facts.compute_unit_price,
    )


def _return_data(meta: TransactionMetadata) -> TransactionReturnData | None:
    data = meta.return_data()
    return data if len(data.data) else None
