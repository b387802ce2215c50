"""Invariant 1's marker facts, read for real: fills, their attempts' marker addresses and
reclaimed markers from the database (SQLite and PostgreSQL), and which markers hold an
account from a localnet over HTTP; then accounted for."""

from __future__ import annotations

from solders.keypair import Keypair
from sqlalchemy import insert, update
from sqlalchemy.engine import Engine

import storage
from crank_node.chaos.audit import read_fill_markers
from crank_node.chaos.marker_checks import FillMarker, account_for_markers
from localnet import LocalnetConfig, LocalnetServer
from localnet.audit import existing_accounts
from storage.models import Settlement, SettlementAttempt, SettlementMarker, table_of
from tests.integration.storage import seed


def _attempt(settlement_id: str, number: int, marker: str | None) -> dict[str, object]:
    return {
        "settlement_id": settlement_id,
        "attempt_number": number,
        "signature": f"sig-{settlement_id}-{number}",
        "raw_transaction": b"raw",
        "blockhash": "hash",
        "last_valid_block_height": 100,
        "claim_token": 1,
        "state": "expired",
        "marker_address": marker,
    }


def test_fill_markers_are_read_per_fill_with_every_attempt_s_address_and_the_reclaims(
    engine: Engine,
) -> None:
    """Two attempts with one marker (confirmed), a reclaimed marker, an attempt from before
    markers, and a fill with no attempt at all: each fill once, with what its rows say."""
    ids = seed.settlements(engine, 4)
    first, second, third = (Keypair().pubkey() for _ in range(3))
    settlements, attempts = table_of(Settlement), table_of(SettlementAttempt)
    with storage.write_transaction(engine) as connection:
        connection.execute(
            insert(attempts),
            [
                _attempt(ids[0], 1, str(first)),
                _attempt(ids[0], 2, str(first)),
                _attempt(ids[1], 1, str(second)),
                _attempt(ids[2], 1, None),
            ],
        )
        connection.execute(
            update(settlements).where(settlements.c.id.in_(ids[:3])).values(status="confirmed")
        )
        connection.execute(
            insert(table_of(SettlementMarker)).values(
                settlement_id=ids[1],
                market_id="SOL-USDC",
                address=str(second),
                lamports=890_880,
                state="reclaimed",
                max_last_valid_block_height=100,
            )
        )
    found = {fill.fill_id: fill for fill in read_fill_markers(engine)}
    assert found == {
        "fill-000": FillMarker("fill-000", "confirmed", frozenset({str(first)})),
        "fill-001": FillMarker("fill-001", "confirmed", frozenset({str(second)}), reclaimed=True),
        "fill-002": FillMarker("fill-002", "confirmed", frozenset()),
        "fill-003": FillMarker("fill-003", "pending", frozenset()),
    }
    with LocalnetServer(LocalnetConfig(port=0, slot_ms=0)) as localnet:
        on_chain = localnet.fixtures.fund_wallet().pubkey()
        localnet.advance_slots(2)
        assert existing_accounts(localnet.url, [str(on_chain), str(third)]) == {str(on_chain)}
        missing = account_for_markers(
            list(found.values()), existing_accounts(localnet.url, [str(first)])
        )
    assert missing.problems == (
        f"fill fill-000: confirmed, but its marker {first} is not on chain and was not reclaimed",
    )
    assert (missing.reclaimed, missing.without_marker) == (1, 2)
