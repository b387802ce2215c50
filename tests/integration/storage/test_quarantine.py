"""The quarantine repository on both engines: rows moved aside and released."""

from __future__ import annotations

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine

import storage
from storage.models import Settlement, table_of


def _settlement_row(engine: Engine) -> None:
    """A settlement whose fill does not exist: the poison case, written by hand with
    the foreign key checks off (as a forged or damaged row would be)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # On the driver's connection, outside any transaction (a no-op inside one).
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        with connection.begin():
            if engine.dialect.name != "sqlite":
                connection.execute(text("SET LOCAL session_replication_role = replica"))
            connection.execute(
                text(
                    "INSERT INTO markets (id, base_mint, quote_mint, base_decimals,"
                    " quote_decimals, settlement_authority) VALUES ('m', 'b', 'q', 6, 6, 'a')"
                )
            )
            connection.execute(
                insert(table_of(Settlement)).values(id="s1", fill_id="missing", market_id="m")
            )
        if engine.dialect.name == "sqlite":
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def _status(engine: Engine) -> str:
    with engine.connect() as connection:
        table = table_of(Settlement)
        return str(connection.execute(select(table.c.status).where(table.c.id == "s1")).scalar())


def test_a_quarantined_settlement_leaves_the_hot_path_and_release_puts_it_back(
    engine: Engine,
) -> None:
    """Quarantine sets the row's status and records the reason once; release makes it
    pending again and keeps the record as released."""
    _settlement_row(engine)
    entry = storage.QuarantineEntry(
        "settlement", "s1", "its fill does not exist", {"fill_id": "missing"}, "m"
    )
    with storage.write_transaction(engine) as connection:
        assert storage.quarantine_rows(connection, [entry]) == 1
    with storage.write_transaction(engine) as connection:
        assert storage.quarantine_rows(connection, [entry]) == 0  # logged once, kept once
    assert _status(engine) == "quarantined"
    assert storage.count_quarantined(engine) == {"settlement": 1}
    [record] = storage.list_quarantined(engine)
    assert (record.kind, record.row_id, record.reason) == (
        "settlement",
        "s1",
        "its fill does not exist",
    )
    assert '"fill_id": "missing"' in record.raw
    assert storage.release_quarantined(engine, record.id, released_by="test")
    assert not storage.release_quarantined(engine, record.id, released_by="test")
    assert _status(engine) == "pending"
    assert storage.count_quarantined(engine) == {}
    released = storage.get_quarantined(engine, record.id)
    assert released is not None and released.status == "released"


def test_a_huge_raw_value_is_cut_not_stored_whole(engine: Engine) -> None:
    """A poisoned megabyte stays out of the table: raw values are bounded."""
    entry = storage.QuarantineEntry("cache", "acct", "x" * 5000, {"data": "y" * 1_000_000})
    with storage.write_transaction(engine) as connection:
        storage.quarantine_rows(connection, [entry])
    [record] = storage.list_quarantined(engine)
    assert len(record.raw) <= storage.quarantine.MAX_RAW_CHARS + 16
    assert len(record.reason) == storage.quarantine.MAX_REASON_CHARS
