"""The settlement transaction market/ builds, executed by the real SPL Token and
Memo programs on localnet, sent and read back through solana-py's client."""

from __future__ import annotations

from solana.rpc.commitment import Confirmed, Processed
from solana.rpc.models import TxOpts
from solders.signature import Signature
from solders.transaction import Transaction
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import revoke
from spl.token.models import RevokeParams

from market import (
    DEFAULT_COMPUTE_UNIT_LIMIT,
    WrongDelegate,
    decode_token_account,
    fill_id_from_memo,
    funding_problem,
)

from .conftest import BUYER_QUOTE_ATOMS, LOT_ATOMS, SELLER_BASE_ATOMS, Trade


def land(trade: Trade, raw: bytes, *, skip_preflight: bool = False) -> Signature:
    """Send ``raw``, produce the slot it lands in and one more (so it is confirmed)."""
    options = TxOpts(skip_preflight=skip_preflight, preflight_commitment=Processed)
    signature = trade.rpc(lambda rpc: rpc.send_raw_transaction(raw, options)).value
    trade.localnet.advance_slots(2)
    return signature


def test_a_settlement_moves_both_legs_exactly_and_logs_the_fill_id_memo(trade: Trade) -> None:
    """The built transaction lands: the buyer gets 2 base tokens, the seller 600_000 quote
    atoms (20 lots at the resting 30_000), nothing else moves, and the memo with the fill
    id is in the logs and in the authority's signature history."""
    fill = trade.fill
    assert (fill.base_atoms, fill.quote_atoms, fill.price_atoms) == (
        20 * LOT_ATOMS,
        600_000,
        30_000,
    )
    before = trade.balances()
    settlement = trade.settlement()

    signature = land(trade, settlement.raw_bytes)

    assert signature == settlement.signature
    status = trade.rpc(lambda rpc: rpc.get_signature_statuses([signature])).value[0]
    assert status is not None and status.err is None
    assert trade.balances() == {
        "seller_base": before["seller_base"] - 20 * LOT_ATOMS,
        "seller_quote": before["seller_quote"] + 600_000,
        "buyer_base": before["buyer_base"] + 20 * LOT_ATOMS,
        "buyer_quote": before["buyer_quote"] - 600_000,
    }
    found = trade.rpc(lambda rpc: rpc.get_transaction(signature, commitment=Confirmed)).value
    assert found is not None and found.transaction.meta is not None
    meta = found.transaction.meta
    assert any(fill.fill_id in line for line in meta.log_messages or [])
    assert meta.compute_units_consumed is not None
    assert 0 < meta.compute_units_consumed <= DEFAULT_COMPUTE_UNIT_LIMIT
    authority = trade.authority.pubkey()
    history = trade.rpc(lambda rpc: rpc.get_signatures_for_address(authority, commitment=Confirmed))
    memos = [fill_id_from_memo(entry.memo) for entry in history.value if entry.memo]
    assert memos == [fill.fill_id]  # the Approve transactions before it carry no memo


def test_the_delegated_amounts_shrink_by_what_the_settlement_moved(trade: Trade) -> None:
    """Read back with the pure decoder, the makers' pay accounts still name the authority
    as delegate, with the delegated amount reduced by exactly each leg."""
    land(trade, trade.settlement().raw_bytes)

    def decoded(name: str) -> tuple[object, int]:
        info = trade.rpc(lambda rpc: rpc.get_account_info(trade.accounts[name], Confirmed)).value
        assert info is not None
        account = decode_token_account(trade.accounts[name], bytes(info.data), info.owner)
        return account.delegate, account.delegated_amount

    authority = trade.authority.pubkey()
    assert decoded("seller_base") == (authority, SELLER_BASE_ATOMS - 20 * LOT_ATOMS)
    assert decoded("buyer_quote") == (authority, BUYER_QUOTE_ATOMS - 600_000)


def test_a_revoked_delegate_makes_the_settlement_fail_and_moves_nothing(trade: Trade) -> None:
    """After the seller revokes the delegate, the funding check says so, and the settlement
    (sent without preflight so the program itself judges it) lands as failed with every
    token balance unchanged."""
    revoke_it = revoke(
        RevokeParams(
            program_id=TOKEN_PROGRAM_ID,
            account=trade.accounts["seller_base"],
            owner=trade.seller.pubkey(),
        )
    )
    blockhash = trade.rpc(lambda rpc: rpc.get_latest_blockhash(Processed)).value.blockhash
    revocation = Transaction.new_signed_with_payer(
        [revoke_it], trade.seller.pubkey(), [trade.seller], blockhash
    )
    land(trade, bytes(revocation))
    seller_base_address = trade.accounts["seller_base"]
    info = trade.rpc(lambda rpc: rpc.get_account_info(seller_base_address, Confirmed)).value
    assert info is not None
    seller_base = decode_token_account(trade.accounts["seller_base"], bytes(info.data), info.owner)
    sell_order_problem = funding_problem(
        trade.market, trade.sell, seller_base, remaining_atoms=20 * LOT_ATOMS
    )
    assert isinstance(sell_order_problem, WrongDelegate)
    before = trade.balances()

    signature = land(trade, trade.settlement().raw_bytes, skip_preflight=True)

    status = trade.rpc(lambda rpc: rpc.get_signature_statuses([signature])).value[0]
    assert status is not None and status.err is not None
    assert trade.balances() == before
