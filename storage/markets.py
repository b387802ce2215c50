"""Markets: a ``market.Market`` stored in, and read back from, the ``markets`` table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from loguru import logger
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

import market as domain
from storage.engine import read_transaction, write_transaction
from storage.errors import DuplicateEntry, IntegrityViolation, StorageError
from storage.models import MARKET_STATUSES, Market, table_of

__all__ = [
    "get_market",
    "insert_market",
    "list_markets",
    "market_from_row",
    "refused_markets",
    "sign_stored_market",
]

_MARKETS = table_of(Market)


def insert_market(
    engine: Engine,
    market: domain.Market,
    *,
    status: str = "active",
    authority: Keypair | None = None,
    signature: Signature | None = None,
) -> None:
    """Store ``market`` with its definition's signature: ``signature``, else one made
    with ``authority`` (its settlement authority's keypair: WrongSigner otherwise),
    else ``market.definition_signature``. Unsigned, the node never matches or settles
    it (:func:`market.market_definition_refusal`). Raises DuplicateEntry (field
    ``market_id``) if its id is taken."""
    if status not in MARKET_STATUSES:
        raise ValueError(f"status must be one of {MARKET_STATUSES}, got {status!r}")
    if signature is None and authority is not None:
        signature = domain.sign_market(market, authority)
    if signature is None:
        signature = market.definition_signature
    values = {
        "id": market.market_id,
        "base_mint": str(market.base_mint),
        "quote_mint": str(market.quote_mint),
        "base_decimals": market.base_decimals,
        "quote_decimals": market.quote_decimals,
        "lot_size_atoms": market.lot_size_atoms,
        "tick_size_atoms": market.tick_size_atoms,
        "settlement_authority": str(market.settlement_authority),
        "fee_payer": str(market.fee_payer),
        "base_token_program": str(market.base_token_program),
        "quote_token_program": str(market.quote_token_program),
        "definition_signature": None if signature is None else str(signature),
        "status": status,
    }
    try:
        with write_transaction(engine, "storage.market_insert") as connection:
            connection.execute(insert(_MARKETS).values(**values))
    except IntegrityViolation:
        if get_market(engine, market.market_id) is None:
            raise
        raise DuplicateEntry("market_id", market.market_id) from None
    logger.bind(action="storage.market_inserted", market_id=market.market_id).info("market stored")


def get_market(engine: Engine, market_id: str) -> domain.Market | None:
    """The market ``market_id`` (any status), or None."""
    with read_transaction(engine, "storage.market_get") as connection:
        row = connection.execute(select(_MARKETS).where(_MARKETS.c.id == market_id)).first()
    return None if row is None else market_from_row(row._mapping)


def list_markets(
    engine: Engine, *, statuses: Iterable[str] = MARKET_STATUSES
) -> list[domain.Market]:
    """Every market whose status is in ``statuses`` (all by default), by id."""
    stmt = select(_MARKETS).where(_MARKETS.c.status.in_(tuple(statuses))).order_by(_MARKETS.c.id)
    with read_transaction(engine, "storage.market_list") as connection:
        return [market_from_row(row._mapping) for row in connection.execute(stmt)]


def sign_stored_market(engine: Engine, market_id: str, authority: Keypair) -> domain.Market:
    """Sign the stored definition of ``market_id`` with ``authority`` (its settlement
    authority's keypair: WrongSigner otherwise) and store the signature: for markets
    stored before revision 0010, or re-signed after a deliberate change. The operator
    signs what the row says now, so check it first (``crank-node market list``).
    Raises StorageError if there is no such market."""
    found = get_market(engine, market_id)
    if found is None:
        raise StorageError(f"no market {market_id!r} in the database")
    signature = domain.sign_market(found, authority)
    with write_transaction(engine, "storage.market_sign") as connection:
        connection.execute(
            update(_MARKETS)
            .where(_MARKETS.c.id == market_id)
            .values(definition_signature=str(signature))
        )
    logger.bind(action="storage.market_signed", market_id=market_id).info(
        f"market {market_id} definition signed by {authority.pubkey()}"
    )
    return replace(found, definition_signature=signature)


def refused_markets(engine: Engine) -> dict[str, str]:
    """Active markets the node refuses to match or settle, with why: a definition not
    signed by its settlement authority (:func:`market.market_definition_refusal`).
    A row that does not rebuild at all is left out: no node can read it, so none
    matches or settles it (the actors log it when they try)."""
    stmt = select(_MARKETS).where(_MARKETS.c.status == "active").order_by(_MARKETS.c.id)
    refused: dict[str, str] = {}
    with read_transaction(engine, "storage.market_refused") as connection:
        rows = list(connection.execute(stmt))
    for row in rows:
        try:
            market = market_from_row(row._mapping)
        except (StorageError, domain.MarketError, ValueError):
            continue
        refusal = domain.market_definition_refusal(market, market.definition_signature)
        if refusal is not None:
            refused[market.market_id] = str(refusal)
    return refused


def market_from_row(row: Any) -> domain.Market:
    """The domain market of a ``markets`` row mapping; refuses a row from before revision 0003."""
    missing = [
        name for name in ("lot_size_atoms", "tick_size_atoms", "fee_payer") if row[name] is None
    ]
    if missing:
        raise StorageError(
            f"market {row['id']!r} was stored before revision 0003 and has no "
            f"{', '.join(missing)}: store it again through storage.insert_market"
        )
    return domain.Market(
        market_id=row["id"],
        base_mint=Pubkey.from_string(row["base_mint"]),
        base_decimals=row["base_decimals"],
        quote_mint=Pubkey.from_string(row["quote_mint"]),
        quote_decimals=row["quote_decimals"],
        lot_size_atoms=row["lot_size_atoms"],
        tick_size_atoms=row["tick_size_atoms"],
        settlement_authority=Pubkey.from_string(row["settlement_authority"]),
        fee_payer=Pubkey.from_string(row["fee_payer"]),
        base_token_program=Pubkey.from_string(row["base_token_program"]),
        quote_token_program=Pubkey.from_string(row["quote_token_program"]),
        definition_signature=_signature(row.get("definition_signature")),
    )


def _signature(text: str | None) -> Signature | None:
    """The stored definition signature; an unparsable one is as good as none (refused)."""
    if text is None:
        return None
    try:
        return Signature.from_string(text)
    except ValueError:
        return None
