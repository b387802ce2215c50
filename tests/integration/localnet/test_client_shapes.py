"""Transaction answers shaped as an Agave node sends them (what strict clients validate)."""

from __future__ import annotations

import base64
from typing import Any

import httpx2
import pytest
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.token.constants import ACCOUNT_LEN, MINT_LEN, TOKEN_PROGRAM_ID

from localnet import LocalnetServer
from localnet.base58 import b58encode

from .chain import call, land_over_http

pytestmark = pytest.mark.localnet(endpoints=3)


def _legacy_and_v0(localnet: LocalnetServer, http: httpx2.Client) -> tuple[str, str]:
    payer = localnet.fixtures.fund_wallet()
    blockhash = localnet.ledger.blockhash_at(localnet.ledger.slot).blockhash
    moves = [
        transfer(
            TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=n)
        )
        for n in (1_000_000, 2_000_000)
    ]
    legacy = Message.new_with_blockhash(moves[:1], payer.pubkey(), blockhash)
    v0 = MessageV0.try_compile(payer.pubkey(), moves[1:], [], blockhash)
    return (
        land_over_http(localnet, http, VersionedTransaction(legacy, [payer])),
        land_over_http(localnet, http, VersionedTransaction(v0, [payer])),
    )


@pytest.mark.parametrize("encoding", ["json", "base64"])
def test_transaction_meta_omits_absent_fields_and_always_has_loaded_addresses(
    localnet: LocalnetServer, http: httpx2.Client, encoding: str
) -> None:
    """getTransaction's meta leaves out an absent returnData/costUnits (never null) and
    sends loadedAddresses as an object for legacy and v0 transactions alike, as Agave
    does; @solana/web3.js 1.x rejects the nulls."""
    for signature in _legacy_and_v0(localnet, http):
        for options in ({}, {"maxSupportedTransactionVersion": 0}):
            config = {"commitment": "confirmed", "encoding": encoding, **options}
            try:
                found = call(http, localnet.url, "getTransaction", signature, config)
            except AssertionError:
                assert not options  # the v0 transaction without maxSupportedTransactionVersion
                continue
            meta = found["meta"]
            assert meta["loadedAddresses"] == {"writable": [], "readonly": []}
            assert "returnData" not in meta and "costUnits" not in meta
            assert None not in (value for key, value in meta.items() if key != "err")
            assert isinstance(meta["computeUnitsConsumed"], int)


def test_accounts_carry_their_whole_data_length_as_space_never_null(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """Agave's UiAccount always sends ``space``, the whole data length even when the
    data is sliced; solders' Account type sent ``"space": null`` in base64 answers."""
    mint = localnet.fixtures.create_mint()
    holder = localnet.fixtures.fund_token_account(Keypair().pubkey(), mint, 5)
    base64_config: dict[str, Any] = {"encoding": "base64"}
    value = call(http, localnet.url, "getAccountInfo", str(mint.address), base64_config)["value"]
    assert value["space"] == MINT_LEN
    sliced = {"encoding": "base64", "dataSlice": {"offset": 0, "length": 4}}
    value = call(http, localnet.url, "getAccountInfo", str(mint.address), sliced)["value"]
    assert value["space"] == MINT_LEN and len(base64.b64decode(value["data"][0])) == 4
    both = [str(holder), str(Keypair().pubkey())]
    values = call(http, localnet.url, "getMultipleAccounts", both, base64_config)["value"]
    assert values[0]["space"] == ACCOUNT_LEN and values[1] is None
    by_size = {**base64_config, "filters": [{"dataSize": ACCOUNT_LEN}]}
    listed = call(http, localnet.url, "getProgramAccounts", str(TOKEN_PROGRAM_ID), by_size)
    assert listed and {item["account"]["space"] for item in listed} == {ACCOUNT_LEN}


def test_a_preflight_failure_carries_agave_s_simulation_result_fields(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """Agave's RpcSimulateTransactionResult skips no field: a preflight failure's data
    has all of them, null exactly where Agave's send_transaction sets None (accounts,
    inner instructions, replacement blockhash, balances, loaded addresses)."""
    payer = localnet.fixtures.fund_wallet()
    blockhash = localnet.ledger.blockhash_at(localnet.ledger.slot).blockhash
    too_much = transfer(
        TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=10**15)
    )
    transaction = VersionedTransaction(
        Message.new_with_blockhash([too_much], payer.pubkey(), blockhash), [payer]
    )
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "sendTransaction",
        "params": [b58encode(bytes(transaction)), {"preflightCommitment": "processed"}],
    }
    error = http.post(localnet.url, json=body).json()["error"]
    assert error["code"] == -32002 and error["message"].startswith("Transaction simulation failed")
    data = error["data"]
    assert set(data) == {
        "err",
        "logs",
        "accounts",
        "unitsConsumed",
        "loadedAccountsDataSize",
        "returnData",
        "innerInstructions",
        "replacementBlockhash",
        "fee",
        "preBalances",
        "postBalances",
        "preTokenBalances",
        "postTokenBalances",
        "loadedAddresses",
    }
    unset = (
        "accounts",
        "innerInstructions",
        "replacementBlockhash",
        "preBalances",
        "postBalances",
        "preTokenBalances",
        "postTokenBalances",
        "loadedAddresses",
    )
    assert all(data[key] is None for key in unset)
    assert data["err"] == {"InstructionError": [0, {"Custom": 1}]} and data["logs"]
    assert data["unitsConsumed"] > 0 and data["fee"] == 5000
