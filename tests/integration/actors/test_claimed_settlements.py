"""ClaimedSettlements' reads after a claim, on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from actors.settlement.claimed import ClaimedSettlements
from supervision import ManualClock
from tests.integration.storage import seed


def test_the_reads_after_a_claim_share_one_read_transaction(engine: Engine) -> None:
    """The claimed settlements' fills, their recorded attempts and their stored trace ids
    are read in one transaction: the three, each in a transaction of its own, cost two
    more transactions a claim, and at a low rate most claims take one settlement."""
    seed.settlements(engine, 0)  # the market and the two orders
    seed.more_settlements(engine, 3)
    claimed = ClaimedSettlements(
        engine, "node-a", {}, claim_ttl_s=30.0, clock=ManualClock(), db_time_offset_s=lambda: 0.0
    )
    reads: list[tuple[str, Any]] = []  # (statement, its transaction), the objects kept alive

    def seen(connection: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            reads.append((" ".join(statement.split()), connection.get_transaction()))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert claimed.claim(3) == 3
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    def transaction_of(needle: str) -> Any:
        found = [transaction for statement, transaction in reads if needle in statement]
        assert len(found) == 1, (needle, [statement[:120] for statement, _ in reads])
        return found[0]

    fills = transaction_of("fills.maker_order_id")
    attempts = transaction_of("FROM settlement_attempts")
    traces = transaction_of("settlements.trace_id")
    assert fills is not None and fills is attempts is traces
