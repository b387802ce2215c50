"""A market definition's canonical bytes, signed by the market's settlement authority.

An order's price is in quote atoms *per lot*, so what a buyer pays depends on the
market's ``lot_size_atoms`` as much as on the signed order: a market row edited
in the shared database (lot 1000 -> 1) would make every buyer pay 1000 times
what they signed for. The market definition is therefore signed too, by its
``settlement_authority``: the node's own key, the one it signs settlements with.
An attacker who also swaps the authority to a key of their own and signs the
definition with it gains nothing: the node holds no keypair for that key, so it
cannot sign any settlement of that market. The check is
:func:`market.authorization.market_definition_refusal`.

Layout ``crank-node:market:v1`` (230 bytes, integers little-endian, no padding)::

    offset  size  field
         0    20  domain prefix, the ASCII bytes b"crank-node:market:v1"
        20    32  market_id, ASCII, NUL-padded
        52    32  base_mint             pubkey
        84    32  quote_mint            pubkey
       116     1  base_decimals         u8
       117     1  quote_decimals        u8
       118     8  lot_size_atoms        u64
       126     8  tick_size_atoms       u64
       134    32  settlement_authority  pubkey
       166    32  base_token_program    pubkey
       198    32  quote_token_program   pubkey

``fee_payer`` is not part of it: it is the node's own account, paying the
transactions' fees in SOL; it moves no maker's tokens, so changing it cannot
make a settlement move more than the makers signed for (and a node can only
settle with a fee payer whose keypair it holds).
"""

from __future__ import annotations

import struct

from solders.keypair import Keypair
from solders.signature import Signature

from market.errors import WrongSigner
from market.fields import market_id_bytes
from market.market import Market

__all__ = ["MARKET_DEFINITION_SIZE", "MARKET_DOMAIN", "market_definition_bytes", "sign_market"]

MARKET_DOMAIN = b"crank-node:market:v1"
_LAYOUT = struct.Struct("<20s32s32s32sBBQQ32s32s32s")
MARKET_DEFINITION_SIZE = _LAYOUT.size


def market_definition_bytes(market: Market) -> bytes:
    """The canonical ``crank-node:market:v1`` bytes of ``market`` (the module's layout)."""
    return _LAYOUT.pack(
        MARKET_DOMAIN,
        market_id_bytes(market.market_id),
        bytes(market.base_mint),
        bytes(market.quote_mint),
        market.base_decimals,
        market.quote_decimals,
        market.lot_size_atoms,
        market.tick_size_atoms,
        bytes(market.settlement_authority),
        bytes(market.base_token_program),
        bytes(market.quote_token_program),
    )


def sign_market(market: Market, authority: Keypair) -> Signature:
    """``authority``'s signature of ``market``'s definition; WrongSigner (field
    ``settlement_authority``) unless it is the market's settlement authority's keypair."""
    if authority.pubkey() != market.settlement_authority:
        raise WrongSigner(
            "settlement_authority",
            f"the keypair is {authority.pubkey()}, the market's settlement authority is "
            f"{market.settlement_authority}",
        )
    return authority.sign_message(market_definition_bytes(market))
