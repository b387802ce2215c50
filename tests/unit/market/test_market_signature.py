"""market.definition and market_definition_refusal: a market's definition is signed by
its settlement authority, and any field changed after signing is refused (issue 14:
an edited lot size made every buyer pay 1000 times what they signed)."""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import Any

import pytest
from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_2022_PROGRAM_ID

from market import (
    MARKET_DEFINITION_SIZE,
    MARKET_DOMAIN,
    Book,
    Fill,
    Market,
    SettlementEvidence,
    Side,
    StoredFill,
    VerifiedSignatures,
    WrongSigner,
    market_definition_bytes,
    market_definition_refusal,
    match,
    settlement_refusal,
    sign_market,
)
from market.fields import U64_MAX

from .factories import (
    AUTHORITY,
    FEE_PAYER,
    LOT_ATOMS,
    MAKERS,
    NOW_S,
    TICK_ATOMS,
    keypair,
    make_market,
    make_order,
    pubkey,
    signed,
)

MARKET = make_market(signed=False)


def test_the_layout_is_the_documented_one() -> None:
    """230 bytes: prefix, id NUL-padded to 32, mints, decimals u8, lot and tick u64 LE,
    authority, the two token programs; each at its documented offset."""
    encoded = market_definition_bytes(MARKET)
    assert len(encoded) == MARKET_DEFINITION_SIZE == 230
    assert encoded[:20] == MARKET_DOMAIN == b"crank-node:market:v1"
    assert encoded[20:52] == b"SOL-USDC" + b"\0" * 24
    assert encoded[52:84] == bytes(MARKET.base_mint)
    assert encoded[84:116] == bytes(MARKET.quote_mint)
    assert encoded[116:118] == bytes([9, 6])
    assert struct.unpack_from("<QQ", encoded, 118) == (LOT_ATOMS, TICK_ATOMS)
    assert encoded[134:166] == bytes(AUTHORITY.pubkey())
    assert encoded[166:198] == bytes(MARKET.base_token_program)
    assert encoded[198:230] == bytes(MARKET.quote_token_program)


def test_the_fee_payer_is_not_part_of_the_definition() -> None:
    """The fee payer moves no maker's tokens: changing it keeps the signature good."""
    other = replace(MARKET, fee_payer=pubkey(99))
    assert market_definition_bytes(other) == market_definition_bytes(MARKET)


def test_a_definition_signed_by_its_authority_is_accepted() -> None:
    signature = sign_market(MARKET, AUTHORITY)
    assert market_definition_refusal(MARKET, signature) is None
    assert market_definition_refusal(MARKET, signature) is None  # remembered, same answer


def test_signing_with_another_keypair_than_the_authority_is_refused() -> None:
    with pytest.raises(WrongSigner) as raised:
        sign_market(MARKET, FEE_PAYER)
    assert raised.value.field == "settlement_authority"


def test_a_missing_signature_is_refused() -> None:
    refusal = market_definition_refusal(MARKET, None)
    assert refusal is not None and refusal.field == "definition_signature"
    assert "not signed" in refusal.reason


def test_a_signature_by_another_key_is_refused() -> None:
    """A valid ed25519 signature of the same bytes, but not by the authority."""
    forged = FEE_PAYER.sign_message(market_definition_bytes(MARKET))
    refusal = market_definition_refusal(MARKET, forged)
    assert refusal is not None and refusal.field == "definition_signature"


TAMPERED: dict[str, dict[str, Any]] = {
    "market_id": {"market_id": "SOL-USDT"},
    "base_mint": {"base_mint": pubkey(50)},
    "quote_mint": {"quote_mint": pubkey(51)},
    "base_decimals": {"base_decimals": 8},
    "quote_decimals": {"quote_decimals": 7},
    "lot_size_atoms": {"lot_size_atoms": 1},
    "tick_size_atoms": {"tick_size_atoms": 1},
    "settlement_authority": {"settlement_authority": keypair(77).pubkey()},
    "base_token_program": {"base_token_program": TOKEN_2022_PROGRAM_ID},
    "quote_token_program": {"quote_token_program": TOKEN_2022_PROGRAM_ID},
}


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_every_signed_field_changed_after_signing_is_refused(name: str) -> None:
    """The row as an attacker left it, with the signature the authority made before."""
    signature = sign_market(MARKET, AUTHORITY)
    tampered = replace(MARKET, **TAMPERED[name])
    refusal = market_definition_refusal(tampered, signature)
    assert refusal is not None and refusal.field == "definition_signature"
    assert "changed after signing" in refusal.reason


def test_an_authority_swapped_and_re_signed_by_the_attacker_verifies() -> None:
    """The check alone cannot tell: the node refuses such a market because it holds no
    keypair for the attacker's key (SettlementActor's signer lookup; integration test)."""
    attacker = keypair(77)
    swapped = replace(MARKET, settlement_authority=attacker.pubkey())
    assert market_definition_refusal(swapped, sign_market(swapped, attacker)) is None


def test_extreme_values_encode_and_verify() -> None:
    """u64 maximum lot and tick, the largest and smallest decimals a market allows (a
    u8 on the wire; Market refuses more than 19), a 32-character id, Token-2022."""
    extreme = Market(
        market_id="A" * 32,
        base_mint=Pubkey(bytes(32)),
        base_decimals=19,
        quote_mint=Pubkey(b"\xff" * 32),
        quote_decimals=0,
        lot_size_atoms=U64_MAX,
        tick_size_atoms=U64_MAX,
        settlement_authority=AUTHORITY.pubkey(),
        fee_payer=FEE_PAYER.pubkey(),
        base_token_program=TOKEN_2022_PROGRAM_ID,
        quote_token_program=TOKEN_2022_PROGRAM_ID,
    )
    encoded = market_definition_bytes(extreme)
    assert encoded[20:52] == b"A" * 32
    assert encoded[116:118] == bytes([19, 0])
    assert encoded[118:134] == b"\xff" * 16
    signature = sign_market(extreme, AUTHORITY)
    assert market_definition_refusal(extreme, signature) is None
    assert market_definition_refusal(replace(extreme, lot_size_atoms=U64_MAX - 1), signature)


def test_the_signature_travels_with_the_market_but_is_not_its_value() -> None:
    """Market.definition_signature: stored alongside, not compared (a market is the same
    market signed or not), and not JSON."""
    signed_market = make_market()
    assert signed_market.definition_signature is not None
    assert signed_market == MARKET
    assert "definition_signature" not in signed_market.to_json()


def _trade(market: Market) -> tuple[Fill, SettlementEvidence]:
    sell = signed(make_order(Side.SELL, price_atoms=100 * TICK_ATOMS, maker=MAKERS[0]))
    buy = signed(make_order(Side.BUY, 102 * TICK_ATOMS, 3 * LOT_ATOMS, maker=MAKERS[1]))
    book = match(Book.empty(market), sell.order, now_s=NOW_S).book
    (fill,) = match(book, buy.order, now_s=NOW_S).fills
    stored = StoredFill(
        fill.fill_id,
        fill.market_id,
        fill.maker_order_id,
        fill.taker_order_id,
        fill.price_atoms,
        fill.base_atoms,
        fill.quote_atoms,
        NOW_S + 1.5,
    )
    evidence = SettlementEvidence(
        stored,
        {sell.order_id: sell, buy.order_id: buy},
        {},
        {sell.order_id: fill.base_atoms, buy.order_id: fill.base_atoms},
    )
    return fill, evidence


def test_every_settlement_attempt_checks_the_market_definition() -> None:
    """settlement_refusal refuses a fill of an unsigned or edited market, even when the
    fill and both orders agree with it (a lot size edited to 1 before matching)."""
    fill, evidence = _trade(make_market())
    assert settlement_refusal(make_market(), fill, evidence, verified=VerifiedSignatures()) is None
    for market in (MARKET, replace(make_market(), lot_size_atoms=LOT_ATOMS * 2)):
        refusal = settlement_refusal(market, fill, evidence, verified=VerifiedSignatures())
        assert refusal is not None and refusal.field == "definition_signature", refusal
        assert fill.fill_id in refusal.reason
    # The attack itself: lot 1 at the same signed price, matched on the edited market.
    edited = replace(make_market(), lot_size_atoms=1, tick_size_atoms=1)
    fill, evidence = _trade(edited)
    assert fill.quote_atoms == 1_000 * 3 * 100 * TICK_ATOMS  # 1000x what 3 lots cost
    refusal = settlement_refusal(edited, fill, evidence, verified=VerifiedSignatures())
    assert refusal is not None and refusal.field == "definition_signature"
