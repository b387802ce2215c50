"""jsonParsed instruction parsing: Agave's field names for instructions solana-py builds."""

from __future__ import annotations

from typing import Any

from solders.instruction import AccountMeta, Instruction
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import (
    TransferWithSeedParams,
    transfer_with_seed,
)
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from spl.token.instructions import AuthorityType, close_account, set_authority, transfer
from spl.token.models import CloseAccountParams, SetAuthorityParams, TransferParams

from localnet.rpc_parsed import parsed_instruction


def _parse(instruction: Instruction, payer: Pubkey) -> dict[str, Any]:
    message = Message.new_with_blockhash([instruction], payer, Message.default().recent_blockhash)
    (compiled,) = message.instructions
    keys = list(message.account_keys)
    return parsed_instruction(
        compiled.program_id_index, bytes(compiled.accounts), bytes(compiled.data), keys, None
    )


def test_a_multisig_token_transfer_names_the_multisig_and_its_signers() -> None:
    """Agave's parse_signers: more than one account after the named ones means a
    multisig authority plus a signers list, not a single authority."""
    source, dest, multisig = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    signers = [Pubkey.new_unique(), Pubkey.new_unique()]
    instruction = transfer(
        TransferParams(
            program_id=TOKEN_PROGRAM_ID,
            source=source,
            dest=dest,
            owner=multisig,
            amount=42,
            signers=signers,
        )
    )
    shown = _parse(instruction, signers[0])
    assert shown["program"] == "spl-token"
    assert shown["parsed"] == {
        "type": "transfer",
        "info": {
            "source": str(source),
            "destination": str(dest),
            "amount": "42",
            "multisigAuthority": str(multisig),
            "signers": [str(key) for key in signers],
        },
    }


def test_token_2022_is_parsed_under_the_same_program_name() -> None:
    """Agave names both token programs ``spl-token``; closeAccount with one owner."""
    account, dest, owner = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    instruction = close_account(
        CloseAccountParams(
            program_id=TOKEN_2022_PROGRAM_ID,
            account=account,
            dest=dest,
            owner=owner,
        )
    )
    shown = _parse(instruction, owner)
    assert (shown["program"], shown["programId"]) == ("spl-token", str(TOKEN_2022_PROGRAM_ID))
    assert shown["parsed"] == {
        "type": "closeAccount",
        "info": {
            "account": str(account),
            "destination": str(dest),
            "owner": str(owner),
        },
    }


def test_set_authority_names_what_it_owns_and_the_new_authority() -> None:
    """An account-owner change says ``account``; a revoked authority is null."""
    account, owner = Pubkey.new_unique(), Pubkey.new_unique()
    instruction = set_authority(
        SetAuthorityParams(
            program_id=TOKEN_PROGRAM_ID,
            account=account,
            authority=AuthorityType.CLOSE_ACCOUNT,
            current_authority=owner,
            new_authority=None,
        )
    )
    assert _parse(instruction, owner)["parsed"] == {
        "type": "setAuthority",
        "info": {
            "account": str(account),
            "authorityType": "closeAccount",
            "newAuthority": None,
            "authority": str(owner),
        },
    }


def test_system_transfer_with_seed_reads_the_bincode_seed_string() -> None:
    """TransferWithSeed carries a length-prefixed seed between lamports and owner."""
    source, base, dest, owner = (Pubkey.new_unique() for _ in range(4))
    instruction = transfer_with_seed(
        TransferWithSeedParams(
            from_pubkey=source,
            from_base=base,
            from_seed="vault-7",
            from_owner=owner,
            to_pubkey=dest,
            lamports=9,
        )
    )
    assert _parse(instruction, base)["parsed"] == {
        "type": "transferWithSeed",
        "info": {
            "source": str(source),
            "sourceBase": str(base),
            "destination": str(dest),
            "lamports": 9,
            "sourceSeed": "vault-7",
            "sourceOwner": str(owner),
        },
    }


def test_short_or_unknown_data_falls_back_to_partially_decoded() -> None:
    """What Agave's parser refuses (truncated transfer, unknown tag) shows as
    {programId, accounts, data}, never an error."""
    payer, other = Pubkey.new_unique(), Pubkey.new_unique()
    metas = [AccountMeta(payer, True, True), AccountMeta(other, False, True)]
    for data in (bytes([3, 1, 2]), bytes([200])):
        shown = _parse(Instruction(TOKEN_PROGRAM_ID, data, metas), payer)
        assert "parsed" not in shown and shown["programId"] == str(TOKEN_PROGRAM_ID)
        assert shown["accounts"] == [str(payer), str(other)]
