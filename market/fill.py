"""A fill: one resting order and one incoming order trading at the resting price."""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from solders.hash import Hash
from solders.pubkey import Pubkey

from market.fields import market_id_bytes, order_id_bytes
from market.market import Market
from market.order import Order, Side

__all__ = [
    "FILL_DOMAIN",
    "Fill",
    "fill_id",
    "net_balance_changes",
]

FILL_DOMAIN = b"crank-node:fill:v1"
_LAYOUT = struct.Struct("<18s32sQ32s32s")


def fill_id(market_id: str, sequence: int, maker_order_id: str, taker_order_id: str) -> str:
    """Base58 SHA-256 of ``b"crank-node:fill:v1" | market_id (32, NUL-padded) |
    sequence (u64 LE) | maker order id (32) | taker order id (32)``.

    Deterministic: the same two orders meeting at the same point of the
    market's fill sequence always get the same id, on any node, after any
    restart; so the id can key the fill in the database and in the memo.
    """
    return str(
        Hash.hash(
            _LAYOUT.pack(
                FILL_DOMAIN,
                market_id_bytes(market_id),
                sequence,
                order_id_bytes("maker_order_id", maker_order_id),
                order_id_bytes("taker_order_id", taker_order_id),
            )
        )
    )


@dataclass(frozen=True)
class Fill:
    """``base_atoms`` traded at ``price_atoms`` (the maker's, i.e. resting, price).

    ``quote_atoms == price_atoms * base_atoms // lot_size_atoms`` exactly:
    ``base_atoms`` is always a whole number of lots, so nothing is rounded.
    The four accounts are everything a settlement needs: the seller's base
    goes to the buyer, the buyer's quote to the seller.
    """

    fill_id: str
    market_id: str
    sequence: int
    maker_order_id: str
    taker_order_id: str
    taker_side: Side
    price_atoms: int
    base_atoms: int
    quote_atoms: int
    buyer: Pubkey
    seller: Pubkey
    buyer_pay_account: Pubkey
    buyer_receive_account: Pubkey
    seller_pay_account: Pubkey
    seller_receive_account: Pubkey

    @property
    def buy_order_id(self) -> str:
        return self.taker_order_id if self.taker_side is Side.BUY else self.maker_order_id

    @property
    def sell_order_id(self) -> str:
        return self.maker_order_id if self.taker_side is Side.BUY else self.taker_order_id

    @classmethod
    def between(
        cls,
        market: Market,
        sequence: int,
        maker: Order,
        taker: Order,
        base_atoms: int,
    ) -> Fill:
        """The fill of ``base_atoms`` between resting ``maker`` and incoming ``taker``."""
        buy, sell = (taker, maker) if taker.side is Side.BUY else (maker, taker)
        maker_id, taker_id = maker.order_id, taker.order_id
        return cls(
            fill_id=fill_id(market.market_id, sequence, maker_id, taker_id),
            market_id=market.market_id,
            sequence=sequence,
            maker_order_id=maker_id,
            taker_order_id=taker_id,
            taker_side=taker.side,
            price_atoms=maker.price_atoms,
            base_atoms=base_atoms,
            quote_atoms=market.quote_atoms(maker.price_atoms, base_atoms),
            buyer=buy.maker,
            seller=sell.maker,
            buyer_pay_account=buy.pay_account,
            buyer_receive_account=buy.receive_account,
            seller_pay_account=sell.pay_account,
            seller_receive_account=sell.receive_account,
        )


def net_balance_changes(fills: Iterable[Fill]) -> dict[str, int]:
    """Net atoms per token account (base58) that settling ``fills`` moves: the seller
    pays base to the buyer, the buyer pays quote to the seller; negative is paid out.
    Accounts whose movements cancel out are kept, with 0."""
    changes: defaultdict[str, int] = defaultdict(int)
    for fill in fills:
        changes[str(fill.seller_pay_account)] -= fill.base_atoms
        changes[str(fill.buyer_receive_account)] += fill.base_atoms
        changes[str(fill.buyer_pay_account)] -= fill.quote_atoms
        changes[str(fill.seller_receive_account)] += fill.quote_atoms
    return dict(changes)
