"""The last check before SettlementActor signs: do the makers' signatures authorize it?

:func:`check_before_signing` reads each settlement's evidence from the database
(``storage.settlement_evidence``: one read for a batch) and runs the pure
:func:`market.settlement_refusal` on it (see :mod:`market.authorization` for the
invariant and every check). It runs before every attempt is signed: the first
one, each one after an expiry, and after recovery. :func:`fail_refused` writes a
refused settlement failed with the reason, never to be signed.
"""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger
from sqlalchemy.engine import Engine

import market as domain
import storage
from actors.settlement.work import SettlementWork

__all__ = ["Refused", "check_before_signing", "fail_refused"]


@dataclass(frozen=True)
class Refused:
    """A settlement failed, unsigned, because the makers' signatures do not authorize it."""

    settlement_id: str
    fill: domain.Fill
    reason: str
    outcome: str = "unauthorized"  # what /metrics counts it as


def check_before_signing(
    engine: Engine, works: list[SettlementWork]
) -> tuple[list[SettlementWork], list[tuple[SettlementWork, domain.Unauthorized]]]:
    """(the works authorized, the works refused and why). Raises StorageError if the
    evidence could not be read: then nothing may be signed now."""
    evidence = storage.settlement_evidence(engine, [work.fill.fill_id for work in works])
    allowed: list[SettlementWork] = []
    refused: list[tuple[SettlementWork, domain.Unauthorized]] = []
    for work in works:
        refusal = domain.settlement_refusal(work.market, work.fill, evidence[work.fill.fill_id])
        if refusal is None:
            allowed.append(work)
        else:
            refused.append((work, refusal))
    return allowed, refused


def fail_refused(
    queue: storage.ClaimQueue, work: SettlementWork, refusal: domain.Unauthorized
) -> Refused:
    """Write ``work`` failed with the refusal as its reason, and log it at ERROR with the
    ids. Raises ClaimLost or another StorageError (then it stays unsigned, and is
    checked again before any attempt)."""
    reason = f"{storage.UNAUTHORIZED_PREFIX}{refusal}"
    storage.fail_settlement(queue, work.claim, reason)
    fill = work.fill
    logger.bind(
        action="settlement.unauthorized",
        settlement_id=work.id,
        fill_id=fill.fill_id,
        market_id=fill.market_id,
        maker_order_id=fill.maker_order_id,
        taker_order_id=fill.taker_order_id,
        field=refusal.field,
    ).error(f"settlement {work.id} refused, never signed: {refusal}")
    return Refused(work.id, fill, reason)
