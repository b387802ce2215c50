"""Methods that take a transaction: sendTransaction, simulateTransaction, requestAirdrop."""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger
from solders.account import Account
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    RequestAirdropResp,
    RpcBlockhash,
    RpcSimulateTransactionResult,
    SendTransactionResp,
    SimulateTransactionResp,
)
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, SimulatedTransactionInfo
from solders.transaction_status import TransactionErrorFieldless, TransactionErrorType

from localnet.rpc_context import RpcContext, RpcMethod, account_view, response_context
from localnet.rpc_encoding import decode_transaction, ui_inner_instructions
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Config, Params, parse_pubkey
from localnet.tx_errors import describe_transaction_error

__all__ = ["TRANSACTION_METHODS"]

_WIRE_ENCODINGS = ("base58", "base64")


def send_transaction(context: RpcContext, params: Params) -> SendTransactionResp:
    config = params.config(1)
    encoding = config.enum("encoding", _WIRE_ENCODINGS, "base58")
    transaction = decode_transaction(params.value(0), encoding)
    signature = transaction.signatures[0]
    if context.drop_sends:
        _log_send(signature, "dropped by fault")
        return SendTransactionResp(signature)
    skip_preflight = config.flag("skipPreflight")
    if not skip_preflight:
        outcome = _preflight(context, transaction, config)
        if outcome is not None:
            _log_send(signature, outcome)
            return SendTransactionResp(signature)
    if context.late_landing_blocks:
        outcome = context.ledger.hold(
            transaction, context.late_landing_blocks, signatures_verified=not skip_preflight
        ).value
        _log_send(signature, f"held for late landing: {outcome}")
        return SendTransactionResp(signature)
    outcome = context.ledger.submit(transaction, signatures_verified=not skip_preflight).value
    _log_send(signature, outcome)
    return SendTransactionResp(signature)


def _preflight(
    context: RpcContext, transaction: VersionedTransaction, config: Config
) -> str | None:
    """Agave's preflight: signatures, health, then a simulation at ``preflightCommitment``.

    Returns a reason when the transaction is already on its way and must not be
    queued again; raises the node's error when preflight fails.
    """
    if not all(transaction.verify_with_results()):
        raise RpcError.signature_verification_failure()
    context.check_health()
    commitment = config.commitment(key="preflightCommitment")
    slot = config.context_slot(context.tip, commitment)
    err = _already_processed_or_expired(context, transaction, slot)
    if err is not None:
        raise RpcError.preflight_failure(describe_transaction_error(err), _bare_failure(err))
    signature = transaction.signatures[0]
    if context.ledger.landed(signature) is not None or context.ledger.is_pending(signature):
        # In flight, or landed after the preflight bank: the cluster deduplicates it.
        return "already in flight"
    simulated = context.ledger.simulate(transaction)
    if isinstance(simulated, FailedTransactionMetadata):
        result = _simulation_result(context, simulated, None, slot)
        raise RpcError.preflight_failure(describe_transaction_error(simulated.err()), result)
    return None


def _already_processed_or_expired(
    context: RpcContext, transaction: VersionedTransaction, slot: int
) -> TransactionErrorType | None:
    """The error a bank at ``slot`` reports before running ``transaction``, if any."""
    landed = context.ledger.landed(transaction.signatures[0])
    if landed is not None and landed.slot <= slot:
        return TransactionErrorFieldless.AlreadyProcessed
    block_height = context.ledger.block_height_of(slot)
    if not context.ledger.processable(transaction, block_height):
        return TransactionErrorFieldless.BlockhashNotFound
    return None


def _bare_failure(err: TransactionErrorType) -> RpcSimulateTransactionResult:
    return RpcSimulateTransactionResult(err=err, logs=[], accounts=None, units_consumed=0)


def simulate_transaction(context: RpcContext, params: Params) -> SimulateTransactionResp:
    config = params.config(1)
    encoding = config.enum("encoding", _WIRE_ENCODINGS, "base58")
    transaction = decode_transaction(params.value(0), encoding)
    replace_blockhash = config.flag("replaceRecentBlockhash")
    if config.flag("sigVerify"):
        if replace_blockhash:
            raise RpcError.invalid_params("sigVerify may not be used with replaceRecentBlockhash")
        if not all(transaction.verify_with_results()):
            raise RpcError.signature_verification_failure()
    slot = config.context_slot(context.tip, config.commitment())
    replacement = None
    if replace_blockhash:
        produced = context.ledger.blockhash_at(slot)
        replacement = RpcBlockhash(produced.blockhash, produced.last_valid_block_height)
        err = None
    else:
        err = _already_processed_or_expired(context, transaction, slot)
    if err is not None:
        return SimulateTransactionResp(_bare_failure(err), response_context(slot))  # type: ignore[call-arg]  # stub lacks context
    simulated = context.ledger.simulate(transaction)
    result = _simulation_result(context, simulated, config, slot, replacement)
    return SimulateTransactionResp(result, response_context(slot))  # type: ignore[call-arg]  # stub lacks context


def _simulation_result(
    context: RpcContext,
    simulated: SimulatedTransactionInfo | FailedTransactionMetadata,
    config: Config | None,
    slot: int,
    replacement: RpcBlockhash | None = None,
) -> RpcSimulateTransactionResult:
    meta = simulated.meta()
    err = simulated.err() if isinstance(simulated, FailedTransactionMetadata) else None
    post = (
        dict(simulated.post_accounts()) if isinstance(simulated, SimulatedTransactionInfo) else {}
    )
    inner = config is not None and config.flag("innerInstructions")
    return RpcSimulateTransactionResult(
        err=err,
        logs=meta.logs(),
        accounts=_requested_accounts(context, config, post, slot),
        units_consumed=meta.compute_units_consumed(),
        return_data=meta.return_data() if len(meta.return_data().data) else None,
        inner_instructions=ui_inner_instructions(meta.inner_instructions()) if inner else None,
        replacement_blockhash=replacement,
        fee=meta.fee(),
    )


def _requested_accounts(
    context: RpcContext, config: Config | None, post: dict[Pubkey, Account], slot: int
) -> Sequence[Account | None] | None:
    raw = None if config is None else config.get("accounts")
    if raw is None or config is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("addresses"), list):
        raise RpcError.invalid_params("Invalid params: accounts needs an addresses list.")
    shown = Config({"encoding": raw.get("encoding")})
    addresses = [parse_pubkey(item) for item in raw["addresses"]]
    return [
        account_view(post.get(key) or context.ledger.account(key, slot), shown) for key in addresses
    ]


def request_airdrop(context: RpcContext, params: Params) -> RequestAirdropResp:
    recipient = params.pubkey(0)
    lamports = params.u64(1)
    params.config(2).commitment()
    transaction = context.ledger.faucet_transfer(recipient, lamports)
    context.ledger.submit(transaction, signatures_verified=True)
    logger.bind(
        action="localnet.airdrop",
        recipient=str(recipient),
        lamports=lamports,
        signature=str(transaction.signatures[0]),
    ).info("airdrop queued")
    return RequestAirdropResp(transaction.signatures[0])


def _log_send(signature: object, outcome: str) -> None:
    logger.bind(
        action="localnet.send_transaction", signature=str(signature), outcome=outcome
    ).debug("transaction received")


TRANSACTION_METHODS: dict[str, tuple[RpcMethod, int, int]] = {
    "sendTransaction": (send_transaction, 1, 2),
    "simulateTransaction": (simulate_transaction, 1, 2),
    "requestAirdrop": (request_airdrop, 2, 3),
}
