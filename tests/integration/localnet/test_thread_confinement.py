"""LiteSVM runs on a thread of its own, so it cannot disturb the callers' threads."""

from __future__ import annotations

import sqlite3
import threading

from localnet import LocalnetConfig, LocalnetServer


def test_sqlite_floats_stay_right_on_the_caller_thread_after_transactions_ran() -> None:
    """LiteSVM leaves a thread's x87 state dirty (SQLite then printed 0.0 as NaN and its
    date functions returned NULL). Fixtures called from this thread must not run it here."""
    with LocalnetServer(LocalnetConfig(port=0, endpoints=1, slot_ms=0)) as localnet:
        wallet = localnet.fixtures.fund_wallet()
        mint = localnet.fixtures.create_mint(decimals=6)
        localnet.fixtures.fund_token_account(wallet.pubkey(), mint, 1_000)
        connection = sqlite3.connect(":memory:")
        try:
            rendered = {
                connection.execute("SELECT printf('%+.3f', ?)", (0.0,)).fetchone()[0]
                for _ in range(200)
            }
            now = connection.execute(
                "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now', '+0.000 seconds')"
            ).fetchone()[0]
        finally:
            connection.close()
    assert rendered == {"+0.000"}
    assert now is not None


def test_the_ledger_thread_ends_with_the_server() -> None:
    """Stopping the localnet stops LiteSVM's thread too."""
    localnet = LocalnetServer(LocalnetConfig(port=0, endpoints=1, slot_ms=0)).start()
    assert any(t.name == "localnet-litesvm" for t in threading.enumerate())
    localnet.stop()
    assert not any(t.name == "localnet-litesvm" and t.is_alive() for t in threading.enumerate())
