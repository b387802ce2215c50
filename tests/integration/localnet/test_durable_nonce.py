"""Durable-nonce transactions: accepted with the real rules, the nonce advanced even on failure."""

from __future__ import annotations

import pytest
from solana.rpc.core import RPCException
from solders.account import Account
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import (
    AdvanceNonceAccountParams,
    TransferParams,
    advance_nonce_account,
    create_nonce_account,
    transfer,
)

from localnet import LocalnetServer
from localnet.nonces import stored_nonce

from .chain import client, run, send, sign

pytestmark = pytest.mark.localnet(endpoints=3)


def _nonce_account(localnet: LocalnetServer, payer: Keypair) -> Pubkey:
    nonce = Keypair()
    blockhash = localnet.ledger.blockhash_at(localnet.ledger.slot).blockhash
    instructions = create_nonce_account(payer.pubkey(), nonce.pubkey(), payer.pubkey(), 10_000_000)
    localnet.ledger.execute_now(sign(instructions, payer, blockhash, nonce))
    localnet.advance_slots(1)  # the nonce was made from this slot's blockhash: move past it
    return nonce.pubkey()


def _nonce(localnet: LocalnetServer, address: Pubkey) -> Hash:
    account = localnet.ledger.account(address, localnet.ledger.slot)
    stored = stored_nonce(account)
    assert stored is not None
    return stored[1]


def _durable(
    payer: Keypair, nonce_address: Pubkey, nonce: Hash, lamports: int, authority: Keypair
) -> tuple[Instruction, Instruction]:
    advance = advance_nonce_account(
        AdvanceNonceAccountParams(nonce_pubkey=nonce_address, authorized_pubkey=authority.pubkey())
    )
    move = transfer(
        TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=lamports)
    )
    return advance, move


def test_a_durable_nonce_transaction_lands_long_after_any_blockhash_and_advances_the_nonce(
    localnet: LocalnetServer,
) -> None:
    """AdvanceNonceAccount first, the nonce as recent blockhash: accepted after the
    151-blockhash window, landed, nonce advanced; the old nonce is then refused."""
    payer = localnet.fixtures.fund_wallet()
    address = _nonce_account(localnet, payer)
    nonce = _nonce(localnet, address)
    localnet.advance_slots(200)  # every blockhash of the nonce's time has expired

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            transaction = sign(_durable(payer, address, nonce, 1_000_000, payer), payer, nonce)
            signature = await send(rpc, transaction)
            localnet.advance_slots(1)
            status = (await rpc.get_signature_statuses([signature])).value[0]
            assert status is not None and status.err is None
            assert _nonce(localnet, address) != nonce
            again = sign(_durable(payer, address, nonce, 1_000_001, payer), payer, nonce)
            with pytest.raises(RPCException, match="Blockhash not found"):
                await send(rpc, again)

    run(scenario())


def test_a_failing_durable_nonce_transaction_still_advances_the_nonce_and_pays_the_fee(
    localnet: LocalnetServer,
) -> None:
    """A transfer that fails after the advance lands with its error; the nonce moved and the
    fee was charged, as a bank does (so the failed bytes can never land again)."""
    payer = localnet.fixtures.fund_wallet(2_000_000_000)
    address = _nonce_account(localnet, payer)
    nonce = _nonce(localnet, address)
    before = localnet.fixtures.lamports(payer.pubkey())
    too_much = 50_000_000_000

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            transaction = sign(_durable(payer, address, nonce, too_much, payer), payer, nonce)
            signature = await send(rpc, transaction, skip_preflight=True)
            localnet.advance_slots(1)
            status = (await rpc.get_signature_statuses([signature])).value[0]
            assert status is not None and status.err is not None
            assert _nonce(localnet, address) != nonce
            assert localnet.fixtures.lamports(payer.pubkey()) == before - 5000

    run(scenario())


def test_a_durable_nonce_transaction_needs_the_nonce_authority_signature(
    localnet: LocalnetServer,
) -> None:
    """Signed without the nonce authority, the nonce does not stand in for a blockhash."""
    payer = localnet.fixtures.fund_wallet()
    stranger = localnet.fixtures.fund_wallet()
    address = _nonce_account(localnet, payer)
    nonce = _nonce(localnet, address)
    localnet.advance_slots(200)

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            instructions = _durable(stranger, address, nonce, 1_000_000, stranger)
            transaction = sign(instructions, stranger, nonce)
            with pytest.raises(RPCException, match="Blockhash not found"):
                await send(rpc, transaction)
            assert isinstance(localnet.ledger.account(address, localnet.ledger.slot), Account)

    run(scenario())
