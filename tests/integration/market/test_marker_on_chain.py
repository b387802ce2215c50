"""The settlement marker on a real localnet (LiteSVM running the System, SPL Token and
Memo programs), over HTTP: the chain itself refuses a second settlement of a fill, and
a marker address derived from public data could be blocked by anyone.

The test ``test_the_cost_of_the_marker_per_settlement`` prints compute units, bytes
and lamports per settlement with and without the marker (run with ``-s``).
"""

from __future__ import annotations

import hashlib

from solana.rpc.commitment import Processed
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction

from market import build_settlement_transaction, settlement_memo
from market.marker import (
    MARKER_RENT_LAMPORTS,
    Marker,
    marker_address,
    marker_for,
    marker_seed,
)
from market.settlement import settlement_instructions

from .conftest import Trade

ALREADY_IN_USE_AT_CREATE = (
    "TransactionErrorInstructionError((2, Tagged(InstructionErrorCustom(0))))"
)


def _land(trade: Trade, raw: bytes) -> Signature:
    options = TxOpts(skip_preflight=True, preflight_commitment=Processed)
    signature = trade.rpc(lambda rpc: rpc.send_raw_transaction(raw, options)).value
    trade.localnet.advance_slots(2)
    return signature


def _blockhash(trade: Trade) -> Hash:
    ledger = trade.localnet.ledger
    return ledger.blockhash_at(ledger.slot).blockhash


def _attempt(trade: Trade) -> bytes:
    return build_settlement_transaction(
        trade.market,
        trade.fill,
        fee_payer=trade.fee_payer,
        settlement_authority=trade.authority,
        recent_blockhash=_blockhash(trade),
        compute_unit_price_micro_lamports=1_000,
    ).raw_bytes


def test_a_second_attempt_with_another_blockhash_lands_failed_at_the_marker_and_moves_nothing(
    trade: Trade,
) -> None:
    """Attempt 1 lands and creates the marker (0 bytes, owner System, the rent-exempt
    minimum). Attempt 2, signed on a later valid blockhash (another signature: the
    cluster cannot deduplicate it), lands failed at the create with AccountAlreadyInUse:
    no token moves, only its fee is charged."""
    ledger = trade.localnet.ledger
    first = _attempt(trade)
    trade.localnet.advance_slots(1)
    second = _attempt(trade)
    assert first != second
    before = trade.balances()

    landed = ledger.landed(_land(trade, first))
    after_first = trade.balances()
    refused = ledger.landed(_land(trade, second))

    assert landed is not None and landed.err is None
    assert refused is not None and str(refused.err) == ALREADY_IN_USE_AT_CREATE
    assert after_first != before and trade.balances() == after_first
    marker = marker_for(trade.authority, trade.fill.fill_id)
    account = ledger.account(marker.address, ledger.slot)
    assert account is not None and account.lamports == MARKER_RENT_LAMPORTS
    assert (
        len(account.data) == 0
        and ledger.minimum_balance_for_rent_exemption(0) == MARKER_RENT_LAMPORTS
    )


def _public_seed(fill_id: str) -> str:
    """What a seed from public data would be: anyone holding the fill id computes it."""
    return hashlib.sha256(f"crank-node:marker:{fill_id}".encode()).hexdigest()[:32]


def _fund(trade: Trade, address: object) -> None:
    fixtures = trade.localnet.fixtures
    squatter = fixtures.fund_wallet()
    instruction = transfer(
        TransferParams(from_pubkey=squatter.pubkey(), to_pubkey=address, lamports=1_000_000)
    )
    legacy = Transaction.new_signed_with_payer(
        [instruction], squatter.pubkey(), [squatter], _blockhash(trade)
    )
    _land(trade, bytes(VersionedTransaction.from_legacy(legacy)))


def test_a_marker_seed_from_public_data_lets_anyone_block_the_settlement(trade: Trade) -> None:
    """A squatter who can compute the marker address from public data (here: a hash of
    the fill id) funds it before the first attempt: that settlement can never land (it
    fails at the create, forever). The real seed (the authority's signature over the
    domain and fill id, hashed) is unaffected: the same funding does not touch it, and
    the settlement lands."""
    ledger, market, fill = trade.localnet.ledger, trade.market, trade.fill
    public = Marker(
        _public_seed(fill.fill_id),
        marker_address(market.settlement_authority, _public_seed(fill.fill_id)),
    )
    _fund(trade, public.address)
    before = trade.balances()

    instructions = settlement_instructions(market, fill, 1_000, marker=public)
    message = Message.new_with_blockhash(instructions, trade.fee_payer.pubkey(), _blockhash(trade))
    blocked = VersionedTransaction(message, [trade.fee_payer, trade.authority])
    refused = ledger.landed(_land(trade, bytes(blocked)))
    assert refused is not None and str(refused.err) == ALREADY_IN_USE_AT_CREATE
    assert trade.balances() == before

    real = ledger.landed(_land(trade, _attempt(trade)))
    assert real is not None and real.err is None
    assert trade.balances() != before


def test_the_real_seed_is_not_in_any_public_data_before_the_first_attempt(trade: Trade) -> None:
    """The seed is SHA-256 of an ed25519 signature by the authority's secret key over
    ``crank-node:marker:<fill id>``, a message the node signs nowhere else: it is not a
    hash of the fill id, the orders' ids or the memo; no signature in another fill's
    settlement transaction gives it; and another key (same public data) gives another."""
    fill = trade.fill
    seed = marker_seed(trade.authority, fill.fill_id)
    public_data = [
        fill.fill_id,
        fill.sell_order_id,
        fill.buy_order_id,
        settlement_memo(fill.fill_id).decode(),
        str(trade.market.settlement_authority),
    ]
    for text in public_data:
        for prefix in ("", "crank-node:marker:"):
            digest = hashlib.sha256((prefix + text).encode()).hexdigest()
            assert seed not in digest
    other_fill = type(fill)(**{**fill.__dict__, "fill_id": "another-fill"})
    other = build_settlement_transaction(
        trade.market,
        other_fill,
        fee_payer=trade.fee_payer,
        settlement_authority=trade.authority,
        recent_blockhash=_blockhash(trade),
        compute_unit_price_micro_lamports=1_000,
    )
    assert seed.encode() not in bytes(other.transaction)
    for signature in other.transaction.signatures:
        assert hashlib.sha256(bytes(signature)).hexdigest()[:32] != seed
    assert marker_seed(Keypair(), fill.fill_id) != seed
    assert "seed" not in repr(marker_for(trade.authority, fill.fill_id)).lower().replace(
        "marker(", ""
    )


def test_the_cost_of_the_marker_per_settlement(trade: Trade) -> None:
    """Compute units, bytes and lamports of one settlement without the marker (the
    legacy form) and with it, both landed on LiteSVM; printed for the report."""
    ledger, market, fill = trade.localnet.ledger, trade.market, trade.fill
    legacy_message = Message.new_with_blockhash(
        settlement_instructions(market, fill, 1_000), trade.fee_payer.pubkey(), _blockhash(trade)
    )
    legacy = bytes(VersionedTransaction(legacy_message, [trade.fee_payer, trade.authority]))
    payer_before = trade.localnet.fixtures.lamports(trade.fee_payer.pubkey())
    old = ledger.landed(_land(trade, legacy))
    payer_middle = trade.localnet.fixtures.lamports(trade.fee_payer.pubkey())
    # Undo the legs' effect is not needed: the fill's amounts are far below the balances.
    marked = _attempt(trade)
    new = ledger.landed(_land(trade, marked))
    payer_after = trade.localnet.fixtures.lamports(trade.fee_payer.pubkey())
    assert old is not None and old.err is None and new is not None and new.err is None
    rows = [
        ("without marker", old.compute_units_consumed, len(legacy), payer_before - payer_middle),
        ("with marker", new.compute_units_consumed, len(marked), payer_middle - payer_after),
    ]
    for name, units, size, lamports in rows:
        print(
            f"\nsettlement {name}: {units} compute units, {size} bytes of 1232, "
            f"{lamports} lamports from the fee payer"
        )
    assert len(marked) - len(legacy) > 0
    assert (payer_middle - payer_after) - (payer_before - payer_middle) == MARKER_RENT_LAMPORTS
