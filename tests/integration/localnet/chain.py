"""Helpers the localnet tests share: signing, sending, and solana-py clients."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import httpx2
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Processed
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction

from localnet import LocalnetServer
from localnet.base58 import b58encode

T = TypeVar("T")
CLIENT_TIMEOUT_S = 5.0


def run(work: Awaitable[T]) -> T:
    """Run one coroutine on a fresh event loop (closed, with its executor, afterwards)."""

    async def main() -> T:
        return await work

    return asyncio.run(main())


def client(url: str, timeout_s: float = CLIENT_TIMEOUT_S, **options: Any) -> AsyncClient:
    """solana-py's client, the independent proof that localnet speaks Solana JSON-RPC."""
    return AsyncClient(url, timeout=timeout_s, **options)


def sign(
    instructions: Sequence[Instruction], payer: Keypair, blockhash: Hash, *signers: Keypair
) -> VersionedTransaction:
    legacy = Transaction.new_signed_with_payer(
        list(instructions), payer.pubkey(), [payer, *signers], blockhash
    )
    return VersionedTransaction.from_legacy(legacy)


def lamport_transfer(
    payer: Keypair, recipient: Pubkey, lamports: int, blockhash: Hash
) -> VersionedTransaction:
    instruction = transfer(
        TransferParams(from_pubkey=payer.pubkey(), to_pubkey=recipient, lamports=lamports)
    )
    return sign([instruction], payer, blockhash)


async def latest_blockhash(rpc: AsyncClient, commitment: Commitment = Processed) -> Hash:
    return (await rpc.get_latest_blockhash(commitment)).value.blockhash


async def send(
    rpc: AsyncClient,
    transaction: VersionedTransaction,
    *,
    skip_preflight: bool = False,
    preflight_commitment: Commitment = Processed,
) -> Signature:
    options = TxOpts(skip_preflight=skip_preflight, preflight_commitment=preflight_commitment)
    return (await rpc.send_raw_transaction(bytes(transaction), options)).value


async def send_and_land(
    localnet: LocalnetServer, rpc: AsyncClient, transaction: VersionedTransaction
) -> Signature:
    """Send with preflight, produce the slot it lands in, and check it succeeded."""
    signature = await send(rpc, transaction)
    localnet.advance_slots(1)
    status = (await rpc.get_signature_statuses([signature])).value[0]
    assert status is not None, f"{signature} did not land"
    assert status.err is None, f"{signature} failed: {status.err}"
    return signature


def call(http: httpx2.Client, url: str, method: str, *params: Any) -> Any:
    """The ``result`` of one JSON-RPC request; fails the test on an error answer."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    answer = http.post(url, json=body).json()
    assert "error" not in answer, answer
    return answer["result"]


def land_over_http(
    localnet: LocalnetServer, http: httpx2.Client, transaction: VersionedTransaction
) -> str:
    """Send ``transaction`` (base58, preflight at processed), then confirm its slot."""
    options = {"preflightCommitment": "processed"}
    signature = call(http, localnet.url, "sendTransaction", b58encode(bytes(transaction)), options)
    localnet.advance_slots(2)
    return str(signature)
