"""Rows for tests: a market, two orders, and fills with pending settlements."""

from __future__ import annotations

import uuid

from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine

from storage import write_transaction
from storage.models import Fill, Market, Order, Settlement

MINT_A = "So11111111111111111111111111111111111111112"
MINT_B = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def market(engine: Engine, market_id: str = "SOL-USDC", status: str = "active") -> str:
    with write_transaction(engine) as connection:
        connection.execute(
            insert(Market).values(
                id=market_id,
                base_mint=MINT_A,
                quote_mint=MINT_B,
                base_decimals=9,
                quote_decimals=6,
                settlement_authority=MINT_A,
                status=status,
            )
        )
    return market_id


def order(
    engine: Engine, order_id: str, market_id: str, side: str, nonce: int, size: int = 10
) -> str:
    with write_transaction(engine) as connection:
        connection.execute(
            insert(Order).values(
                id=order_id,
                market_id=market_id,
                maker=MINT_A,
                side=side,
                price_atoms=100,
                size_atoms=size,
                remaining_atoms=size,
                pay_account=MINT_A,
                receive_account=MINT_B,
                nonce=nonce,
                signature="sig-" + order_id,
            )
        )
    return order_id


def settlements(engine: Engine, count: int) -> list[str]:
    """A market, two orders and ``count`` fills, each with a pending settlement; their ids."""
    market_id = market(engine)
    maker, taker = (
        order(engine, "maker", market_id, "sell", 1),
        order(engine, "taker", market_id, "buy", 2),
    )
    ids = []
    with write_transaction(engine) as connection:
        for index in range(count):
            _fill_and_settlement(
                connection, f"fill-{index:03d}", f"settle-{index:03d}", market_id, maker, taker
            )
            ids.append(f"settle-{index:03d}")
    return ids


def more_settlements(engine: Engine, count: int) -> list[str]:
    """``count`` more fills with pending settlements, on :func:`settlements`' market and
    orders, each settlement's id its fill's (as record_match writes them); their ids."""
    ids = [f"more-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    with write_transaction(engine) as connection:
        for settlement_id in ids:
            _fill_and_settlement(
                connection, settlement_id, settlement_id, "SOL-USDC", "maker", "taker"
            )
    return ids


def _fill_and_settlement(
    connection: Connection, fill_id: str, settlement_id: str, market_id: str, maker: str, taker: str
) -> None:
    """A one-lot fill of ``maker`` and ``taker`` and its pending settlement."""
    connection.execute(
        insert(Fill).values(
            id=fill_id,
            market_id=market_id,
            maker_order_id=maker,
            taker_order_id=taker,
            price_atoms=100,
            base_atoms=1,
            quote_atoms=100,
            fencing_token=1,
        )
    )
    connection.execute(
        insert(Settlement).values(id=settlement_id, fill_id=fill_id, market_id=market_id)
    )
