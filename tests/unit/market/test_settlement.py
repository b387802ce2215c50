"""The settlement transaction's shape, signatures and determinism, without a chain."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from solders.compute_budget import ID as COMPUTE_BUDGET_ID
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.transaction import Transaction, VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import transfer_checked
from spl.token.models import TransferCheckedParams

from market import (
    DEFAULT_COMPUTE_UNIT_LIMIT,
    Book,
    Fill,
    Market,
    NumberOutOfRange,
    SettlementTransaction,
    Side,
    WrongMarket,
    WrongSigner,
    build_settlement_transaction,
    fill_id_from_memo,
    match,
    settlement_memo,
)
from market.marker import marker_create_instruction, marker_for

from .factories import (
    AUTHORITY,
    BASE_MINT,
    FEE_PAYER,
    LOT_ATOMS,
    MAKERS,
    NOW_S,
    QUOTE_MINT,
    make_market,
    make_order,
)

MARKET = make_market()
BLOCKHASH = Hash(b"\x07" * 32)
TRANSFER_CHECKED = 12  # the SPL Token instruction tag


def a_fill() -> Fill:
    book = match(Book.empty(MARKET), make_order(Side.SELL, maker=MAKERS[0]), now_s=NOW_S).book
    (fill,) = match(
        book, make_order(Side.BUY, 1_100, 3 * LOT_ATOMS, maker=MAKERS[1]), now_s=NOW_S
    ).fills
    return fill


def build(
    fill: Fill | None = None, market: Market = MARKET, **options: object
) -> SettlementTransaction:
    arguments: dict[str, object] = {
        "fee_payer": FEE_PAYER,
        "settlement_authority": AUTHORITY,
        "recent_blockhash": BLOCKHASH,
        "compute_unit_price_micro_lamports": 2_500,
    }
    arguments.update(options)
    # Loose on purpose: cases pass wrong keypairs and out-of-range numbers.
    return build_settlement_transaction(market, fill or a_fill(), **arguments)  # type: ignore[arg-type]


def test_the_instructions_are_budget_budget_marker_base_leg_quote_leg_memo() -> None:
    """Six instructions in the documented order, each to its program; the marker create
    is the fill's marker (market.marker_for), recorded on the transaction."""
    built = build()
    message = built.transaction.message
    programs = [message.account_keys[ix.program_id_index] for ix in message.instructions]
    assert programs == [
        COMPUTE_BUDGET_ID,
        COMPUTE_BUDGET_ID,
        SYSTEM_PROGRAM_ID,
        TOKEN_PROGRAM_ID,
        TOKEN_PROGRAM_ID,
        MEMO_PROGRAM_ID,
    ]
    assert built.marker_address == marker_for(AUTHORITY, a_fill().fill_id).address


def test_each_leg_moves_the_right_amount_of_the_right_mint_between_the_right_accounts() -> None:
    """Base: seller pay -> buyer receive, 3 lots, 9 decimals; quote: buyer pay -> seller
    receive, 3 * 1_000 atoms at the resting price, 6 decimals; the authority signs both."""
    fill = a_fill()
    message = build(fill).transaction.message
    keys = message.account_keys
    legs = [message.instructions[3], message.instructions[4]]
    expected = [
        (fill.seller_pay_account, BASE_MINT, fill.buyer_receive_account, 3 * LOT_ATOMS, 9),
        (fill.buyer_pay_account, QUOTE_MINT, fill.seller_receive_account, 3_000, 6),
    ]
    for leg, (source, mint, dest, amount, decimals) in zip(legs, expected, strict=True):
        data = bytes(leg.data)
        assert data[0] == TRANSFER_CHECKED
        assert int.from_bytes(data[1:9], "little") == amount and data[9] == decimals
        assert [keys[index] for index in bytes(leg.accounts)] == [
            source,
            mint,
            dest,
            AUTHORITY.pubkey(),
        ]


def test_the_compute_budget_and_memo_carry_the_given_values() -> None:
    """Limit and price are encoded as given; the memo is the fill id's memo text, which
    fill_id_from_memo reads back from RPC's "[len] text" form."""
    fill = a_fill()
    message = build(fill, compute_unit_limit=55_000).transaction.message
    limit, price, memo = (bytes(message.instructions[i].data) for i in (0, 1, 5))
    assert limit == b"\x02" + (55_000).to_bytes(4, "little")
    assert price == b"\x03" + (2_500).to_bytes(8, "little")
    assert memo == settlement_memo(fill.fill_id)
    assert fill_id_from_memo(f"[{len(memo)}] {memo.decode()}") == fill.fill_id
    assert fill_id_from_memo("[5] hello") is None


def test_fee_payer_and_authority_sign_and_the_fee_payers_signature_is_the_id() -> None:
    """The message needs two signatures, both verify, and the first (the fee payer's) is
    the transaction's signature; the default compute limit is used when none is given."""
    settlement = build()
    transaction = settlement.transaction
    message_bytes = bytes(transaction.message)
    assert transaction.message.header.num_required_signatures == 2
    assert transaction.message.account_keys[:2] == [FEE_PAYER.pubkey(), AUTHORITY.pubkey()]
    for key, signature in zip(
        transaction.message.account_keys, transaction.signatures, strict=False
    ):
        assert signature.verify(key, message_bytes)
    assert settlement.signature == transaction.signatures[0]
    limit = bytes(transaction.message.instructions[0].data)
    assert int.from_bytes(limit[1:], "little") == DEFAULT_COMPUTE_UNIT_LIMIT


def test_one_key_as_fee_payer_and_authority_signs_once() -> None:
    """A market whose fee payer is its settlement authority needs a single signature."""
    market = make_market(fee_payer=AUTHORITY.pubkey())
    settlement = build(market=market, fee_payer=AUTHORITY)
    assert len(settlement.transaction.signatures) == 1


def test_the_same_inputs_give_byte_identical_transactions() -> None:
    """Deterministic bytes are what make resends deduplicate; a new blockhash changes them."""
    assert build().raw_bytes == build().raw_bytes
    assert build().raw_bytes != build(recent_blockhash=Hash(b"\x08" * 32)).raw_bytes


@pytest.mark.parametrize(
    ("options", "error", "field"),
    [
        ({"fee_payer": Keypair()}, WrongSigner, "fee_payer"),
        ({"settlement_authority": FEE_PAYER}, WrongSigner, "settlement_authority"),
        ({"compute_unit_limit": 0}, NumberOutOfRange, "compute_unit_limit"),
        ({"compute_unit_limit": 1_400_001}, NumberOutOfRange, "compute_unit_limit"),
        (
            {"compute_unit_price_micro_lamports": -1},
            NumberOutOfRange,
            "compute_unit_price_micro_lamports",
        ),
    ],
)
def test_bad_settlement_inputs_are_refused_by_name(
    options: dict[str, Any], error: type[Exception], field: str
) -> None:
    """Keypairs that are not the market's, and compute values out of range, name the field."""
    with pytest.raises(error) as refused:
        build(**options)
    assert getattr(refused.value, "field", None) == field


def test_a_fill_of_another_market_is_refused() -> None:
    """Settling a fill on the wrong market names market_id."""
    other = make_market(market_id="OTHER")
    with pytest.raises(WrongMarket) as refused:
        build_settlement_transaction(
            other,
            a_fill(),
            fee_payer=FEE_PAYER,
            settlement_authority=AUTHORITY,
            recent_blockhash=BLOCKHASH,
            compute_unit_price_micro_lamports=0,
        )
    assert refused.value.field == "market_id"


def _reference_bytes(market: Market, fill: Fill, fee_payer: Keypair, price: int) -> bytes:
    """The settlement as first written: spl-token's ``transfer_checked`` for the legs and
    solders' ``Transaction.new_signed_with_payer`` to sign."""
    authority = market.settlement_authority

    def leg(source: Any, mint: Any, dest: Any, amount: int, decimals: int) -> Instruction:
        return transfer_checked(
            TransferCheckedParams(
                program_id=TOKEN_PROGRAM_ID,
                source=source,
                mint=mint,
                dest=dest,
                owner=authority,
                amount=amount,
                decimals=decimals,
            )
        )

    instructions = [
        set_compute_unit_limit(DEFAULT_COMPUTE_UNIT_LIMIT),
        set_compute_unit_price(price),
        marker_create_instruction(
            fee_payer=market.fee_payer,
            settlement_authority=authority,
            marker=marker_for(AUTHORITY, fill.fill_id),
        ),
        leg(
            fill.seller_pay_account,
            market.base_mint,
            fill.buyer_receive_account,
            fill.base_atoms,
            market.base_decimals,
        ),
        leg(
            fill.buyer_pay_account,
            market.quote_mint,
            fill.seller_receive_account,
            fill.quote_atoms,
            market.quote_decimals,
        ),
        Instruction(
            MEMO_PROGRAM_ID,
            settlement_memo(fill.fill_id),
            [AccountMeta(authority, is_signer=True, is_writable=False)],
        ),
    ]
    signers = [fee_payer] if fee_payer == AUTHORITY else [fee_payer, AUTHORITY]
    legacy = Transaction.new_signed_with_payer(instructions, fee_payer.pubkey(), signers, BLOCKHASH)
    return bytes(VersionedTransaction.from_legacy(legacy))


@pytest.mark.parametrize("one_signer", [False, True])
@pytest.mark.parametrize("base_atoms", [LOT_ATOMS, 2**64 - 1])
def test_the_transaction_is_byte_identical_to_the_one_built_with_the_libraries_helpers(
    one_signer: bool, base_atoms: int
) -> None:
    """The hand-packed TransferChecked legs, public keys derived once per keypair and
    signing the message directly give exactly the bytes spl-token's ``transfer_checked``
    and ``Transaction.new_signed_with_payer`` give, with one signer or two, up to the
    largest u64 amount: what was sent before is what is sent now (resends stay identical)."""
    market = make_market(fee_payer=AUTHORITY.pubkey()) if one_signer else MARKET
    fee_payer = AUTHORITY if one_signer else FEE_PAYER
    fill = dataclasses.replace(a_fill(), base_atoms=base_atoms, quote_atoms=2**64 - 2)

    for price in (0, 2_500):
        built = build(fill, market, fee_payer=fee_payer, compute_unit_price_micro_lamports=price)
        assert built.raw_bytes == _reference_bytes(market, fill, fee_payer, price)


@pytest.mark.parametrize("field", ["base_atoms", "quote_atoms"])
def test_a_leg_amount_beyond_u64_is_refused_by_name(field: str) -> None:
    """An amount that does not fit TransferChecked's u64 names its field."""
    fill = dataclasses.replace(a_fill(), **{field: 2**64})
    with pytest.raises(NumberOutOfRange) as refused:
        build(fill)
    assert refused.value.field == field


def test_a_wrong_keypair_is_refused_after_the_right_ones_were_used() -> None:
    """Public keys are remembered per keypair: having signed with the market's keypairs,
    another keypair (or the two swapped) is still refused, naming the field."""
    build()
    with pytest.raises(WrongSigner) as refused:
        build(fee_payer=AUTHORITY, settlement_authority=FEE_PAYER)
    assert refused.value.field == "fee_payer"
    with pytest.raises(WrongSigner):
        build(settlement_authority=Keypair())
