"""getTransaction and getBlock with ``"encoding": "jsonParsed"``, shaped as Agave's
``encode_with_meta(JsonParsed)`` and read back by solders' own response types."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from solders.compute_budget import set_compute_unit_limit
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.rpc.responses import GetBlockResp, GetTransactionResp
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import UiParsedMessage, UiTransaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID, MINT_LEN, TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    mint_to_checked,
)
from spl.token.models import InitializeMint2Params, MintToCheckedParams

from localnet import LocalnetServer
from localnet.base58 import b58encode

from .chain import call, land_over_http

pytestmark = pytest.mark.localnet(endpoints=3)

SYSTEM = "11111111111111111111111111111111"
COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"
DECIMALS = 6
LAMPORTS = 1_000_000


class TokenLaunch:
    """One legacy transaction touching every parser: compute budget (not parsed), System
    createAccount, Token initializeMint2 and mintToChecked, an ATA create (with inner
    System and Token instructions) and a memo."""

    def __init__(self, localnet: LocalnetServer, http: httpx2.Client) -> None:
        self.payer = localnet.fixtures.fund_wallet()
        self.mint, self.owner = Keypair(), Keypair().pubkey()
        self.account = get_associated_token_address(self.owner, self.mint.pubkey())
        self.rent = localnet.ledger.minimum_balance_for_rent_exemption(MINT_LEN)
        payer, mint = self.payer.pubkey(), self.mint.pubkey()
        instructions = [
            set_compute_unit_limit(400_000),
            create_account(
                CreateAccountParams(
                    from_pubkey=payer,
                    to_pubkey=mint,
                    lamports=self.rent,
                    space=MINT_LEN,
                    owner=TOKEN_PROGRAM_ID,
                )
            ),
            initialize_mint2(
                InitializeMint2Params(
                    decimals=DECIMALS,
                    program_id=TOKEN_PROGRAM_ID,
                    mint=mint,
                    mint_authority=payer,
                )
            ),
            create_associated_token_account(payer, self.owner, mint),
            mint_to_checked(
                MintToCheckedParams(
                    program_id=TOKEN_PROGRAM_ID,
                    mint=mint,
                    dest=self.account,
                    mint_authority=payer,
                    amount=1_500_000,
                    decimals=DECIMALS,
                )
            ),
            create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=payer, message=b"launch")),
        ]
        blockhash = localnet.ledger.blockhash_at(localnet.ledger.slot).blockhash
        message = Message.new_with_blockhash(instructions, payer, blockhash)
        self.signature = land_over_http(
            localnet, http, VersionedTransaction(message, [self.payer, self.mint])
        )


@pytest.fixture
def launch(localnet: LocalnetServer, http: httpx2.Client) -> TokenLaunch:
    return TokenLaunch(localnet, http)


def _parsed(http: httpx2.Client, localnet: LocalnetServer, signature: str) -> Any:
    config = {"commitment": "confirmed", "encoding": "jsonParsed"}
    return call(http, localnet.url, "getTransaction", signature, config)


def test_json_parsed_transaction_parses_each_known_program_as_agave_does(
    localnet: LocalnetServer, http: httpx2.Client, launch: TokenLaunch
) -> None:
    """Known programs' instructions come back parsed with Agave's field names, the
    compute-budget one partially decoded; keys are {pubkey, writable, signer, source}."""
    found = _parsed(http, localnet, launch.signature)
    message = found["transaction"]["message"]
    payer, mint = str(launch.payer.pubkey()), str(launch.mint.pubkey())
    keys = {key["pubkey"]: key for key in message["accountKeys"]}
    assert keys[payer] == {
        "pubkey": payer,
        "writable": True,
        "signer": True,
        "source": "transaction",
    }
    assert keys[mint]["signer"] and keys[mint]["writable"]
    assert not keys[str(TOKEN_PROGRAM_ID)]["writable"] and not keys[SYSTEM]["writable"]
    assert "addressTableLookups" not in message
    budget, create, init_mint, ata, mint_to, memo = message["instructions"]
    assert budget == {
        "programId": COMPUTE_BUDGET,
        "accounts": [],
        "data": b58encode(bytes(set_compute_unit_limit(400_000).data)),
        "stackHeight": None,
    }
    assert create == {
        "program": "system",
        "programId": SYSTEM,
        "stackHeight": None,
        "parsed": {
            "type": "createAccount",
            "info": {
                "source": payer,
                "newAccount": mint,
                "lamports": launch.rent,
                "space": MINT_LEN,
                "owner": str(TOKEN_PROGRAM_ID),
            },
        },
    }
    assert init_mint["program"] == "spl-token"
    assert init_mint["parsed"] == {
        "type": "initializeMint2",
        "info": {"mint": mint, "decimals": DECIMALS, "mintAuthority": payer},
    }
    assert ata["program"] == "spl-associated-token-account"
    assert ata["programId"] == str(ASSOCIATED_TOKEN_PROGRAM_ID)
    assert ata["parsed"] == {
        "type": "create",
        "info": {
            "source": payer,
            "account": str(launch.account),
            "wallet": str(launch.owner),
            "mint": mint,
            "systemProgram": SYSTEM,
            "tokenProgram": str(TOKEN_PROGRAM_ID),
        },
    }
    assert mint_to["parsed"] == {
        "type": "mintToChecked",
        "info": {
            "mint": mint,
            "account": str(launch.account),
            "mintAuthority": payer,
            "tokenAmount": {
                "amount": "1500000",
                "decimals": DECIMALS,
                "uiAmount": 1.5,
                "uiAmountString": "1.5",
            },
        },
    }
    assert memo == {
        "program": "spl-memo",
        "programId": str(MEMO_PROGRAM_ID),
        "parsed": "launch",
        "stackHeight": None,
    }


def test_json_parsed_meta_parses_inner_instructions_and_leaves_out_loaded_addresses(
    localnet: LocalnetServer, http: httpx2.Client, launch: TokenLaunch
) -> None:
    """The ATA program's inner instructions are parsed too (with their stack height),
    loadedAddresses is left out (Agave skips it for jsonParsed), token balances stay."""
    meta = _parsed(http, localnet, launch.signature)["meta"]
    assert "loadedAddresses" not in meta and "returnData" not in meta
    (inner,) = meta["innerInstructions"]
    assert inner["index"] == 3
    kinds = [(item.get("program"), item["parsed"]["type"]) for item in inner["instructions"]]
    assert ("system", "createAccount") in kinds
    assert ("spl-token", "initializeAccount3") in kinds
    data_size = next(
        item for item in inner["instructions"] if item["parsed"]["type"] == "getAccountDataSize"
    )
    assert data_size["parsed"]["info"] == {
        "mint": str(launch.mint.pubkey()),
        "extensionTypes": ["immutableOwner"],
    }
    assert {item["stackHeight"] for item in inner["instructions"]} == {2}
    (balance,) = meta["postTokenBalances"]
    assert balance["mint"] == str(launch.mint.pubkey())
    assert balance["uiTokenAmount"]["amount"] == "1500000"


def test_json_parsed_answers_read_back_through_solders_response_types(
    localnet: LocalnetServer, http: httpx2.Client, launch: TokenLaunch
) -> None:
    """solders (solana-py's types, mirroring Agave's) reads the getTransaction and
    getBlock answers as parsed messages and parsed/partially decoded instructions,
    and writes back the same JSON."""
    found = _parsed(http, localnet, launch.signature)
    envelope = {"jsonrpc": "2.0", "result": found, "id": 1}
    typed = GetTransactionResp.from_json(json.dumps(envelope))
    assert isinstance(typed, GetTransactionResp) and typed.value is not None
    assert json.loads(typed.to_json())["result"]["transaction"] == found["transaction"]
    shown_transaction = typed.value.transaction.transaction
    assert isinstance(shown_transaction, UiTransaction)
    assert isinstance(shown_transaction.message, UiParsedMessage)
    block = call(
        http,
        localnet.url,
        "getBlock",
        found["slot"],
        {
            "commitment": "confirmed",
            "encoding": "jsonParsed",
            "maxSupportedTransactionVersion": 0,
        },
    )
    (shown,) = [
        tx for tx in block["transactions"] if tx["transaction"]["signatures"][0] == launch.signature
    ]
    assert shown["transaction"] == found["transaction"] and shown["version"] == "legacy"
    typed_block = GetBlockResp.from_json(json.dumps({"jsonrpc": "2.0", "result": block, "id": 1}))
    assert isinstance(typed_block, GetBlockResp) and typed_block.value is not None


def test_json_parsed_v0_transaction_has_its_version_and_lookups(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """A v0 transfer: version 0, addressTableLookups present (empty), the transfer
    parsed; without maxSupportedTransactionVersion it is refused, as in json."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()
    blockhash = localnet.ledger.blockhash_at(localnet.ledger.slot).blockhash
    move = transfer(
        TransferParams(from_pubkey=payer.pubkey(), to_pubkey=recipient, lamports=LAMPORTS)
    )
    v0 = MessageV0.try_compile(payer.pubkey(), [move], [], blockhash)
    signature = land_over_http(localnet, http, VersionedTransaction(v0, [payer]))
    config = {
        "commitment": "confirmed",
        "encoding": "jsonParsed",
        "maxSupportedTransactionVersion": 0,
    }
    found = call(http, localnet.url, "getTransaction", signature, config)
    assert found["version"] == 0
    message = found["transaction"]["message"]
    assert message["addressTableLookups"] == []
    assert message["instructions"][0]["parsed"] == {
        "type": "transfer",
        "info": {
            "source": str(payer.pubkey()),
            "destination": str(recipient),
            "lamports": LAMPORTS,
        },
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "getTransaction",
        "params": [signature, {"commitment": "confirmed", "encoding": "jsonParsed"}],
    }
    refused = http.post(localnet.url, json=body).json()
    assert refused["error"]["code"] == -32015
