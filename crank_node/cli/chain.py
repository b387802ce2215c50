"""What the operator commands (``market``, ``maker``, ``wallet``) ask of the chain,
through solana-py's client (async only here: each call runs on a loop of its own):
read an account, send a transaction and wait for it to be confirmed. Errors come
out as :class:`ChainError` with the reason; nothing here retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TxOpts
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus

from supervision.errors import CrankError

__all__ = ["ChainError", "airdrop", "fetch_account", "lamports_of", "send_and_confirm"]

T = TypeVar("T")

RPC_TIMEOUT_S = 15.0
CONFIRM_TIMEOUT_S = 60.0
_POLL_S = 0.4  # one slot: a confirmation cannot come faster
_LANDED = (TransactionConfirmationStatus.Confirmed, TransactionConfirmationStatus.Finalized)


class ChainError(CrankError):
    """The chain could not be asked, or refused."""


class Client:
    """solana-py's AsyncClient, called synchronously: ``client.call("get_balance", key)``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            async with AsyncClient(self.url, commitment=Confirmed, timeout=RPC_TIMEOUT_S) as c:
                return await getattr(c, method)(*args, **kwargs)

        return asyncio.run(run())


def _client(url: str) -> Client:
    return Client(url)


def airdrop(url: str, address: Pubkey, lamports: int) -> Signature:
    """requestAirdrop (devnet, testnet, localnet faucets)."""
    try:
        signature: Signature = _client(url).call("request_airdrop", address, lamports).value
    except Exception as error:  # noqa: BLE001
        raise ChainError(f"requestAirdrop at {url} failed: {error}") from None
    return signature


def fetch_account(url: str, address: Pubkey) -> tuple[bytes, Pubkey] | None:
    """``address``'s data and owner at ``confirmed``, or None if it does not exist."""
    try:
        value = _client(url).call("get_account_info", address, commitment=Confirmed).value
    except Exception as error:  # noqa: BLE001  (solana-py raises many kinds; one message)
        raise ChainError(f"getAccountInfo {address} at {url} failed: {error}") from None
    return None if value is None else (bytes(value.data), value.owner)


def lamports_of(url: str, address: Pubkey) -> int:
    try:
        return int(_client(url).call("get_balance", address, commitment=Confirmed).value)
    except Exception as error:  # noqa: BLE001
        raise ChainError(f"getBalance {address} at {url} failed: {error}") from None


def send_and_confirm(
    url: str, instructions: Sequence[Instruction], payer: Keypair, signers: Sequence[Keypair] = ()
) -> Signature:
    """Sign ``instructions`` (``payer`` pays and signs first), send with preflight, and
    wait until the signature is ``confirmed`` (or its blockhash expires)."""
    client = _client(url)
    try:
        blockhash = client.call("get_latest_blockhash", commitment=Confirmed).value
        message = Message.new_with_blockhash(
            list(instructions), payer.pubkey(), blockhash.blockhash
        )
        unique = {payer.pubkey(): payer, **{k.pubkey(): k for k in signers}}
        transaction = VersionedTransaction(message, list(unique.values()))
        signature: Signature = client.call(
            "send_transaction", transaction, opts=TxOpts(preflight_commitment=Confirmed)
        ).value
    except Exception as error:  # noqa: BLE001
        raise ChainError(f"sending the transaction to {url} failed: {error}") from None
    deadline = time.monotonic() + CONFIRM_TIMEOUT_S
    while time.monotonic() < deadline:
        status = client.call("get_signature_statuses", [signature]).value[0]
        if status is not None and status.err is not None:
            raise ChainError(f"transaction {signature} failed: {status.err}")
        if status is not None and status.confirmation_status in _LANDED:
            return signature
        if client.call("get_block_height", Confirmed).value > blockhash.last_valid_block_height:
            raise ChainError(f"transaction {signature} expired without landing")
        time.sleep(_POLL_S)  # a CLI waiting on the chain: real time is what it waits for
    raise ChainError(f"transaction {signature} not confirmed within {CONFIRM_TIMEOUT_S:.0f} s")
