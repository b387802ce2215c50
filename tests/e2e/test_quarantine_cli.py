"""`crank-node quarantine list|show|release` as an operator runs it: a real process on a
real SQLite file holding one quarantined order."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from solders.keypair import Keypair
from sqlalchemy import update

import market as domain
import storage
from storage import open_engine, sqlite_url, upgrade
from storage.models import Order, table_of
from tests.e2e.test_cli import crank
from tests.support.node_process import make_database

_ORDERS = table_of(Order)


def _edited_order(path: Path) -> str:
    """An order of market m0 stored, then edited in place, then read (and so quarantined)."""
    engine = open_engine(sqlite_url(path))
    try:
        upgrade(engine)
        maker = Keypair()
        order = domain.Order(
            market_id="m0",
            side=domain.Side.SELL,
            price_atoms=100,
            size_atoms=10,
            maker=maker.pubkey(),
            pay_account=Keypair().pubkey(),
            receive_account=Keypair().pubkey(),
            client_order_id=1,
            expiry_s=int(time.time()) + 3600,
            nonce=1,
        )
        order_id = storage.store_order(engine, domain.sign_order(order, maker)).order_id
        with engine.begin() as connection:
            connection.execute(
                update(_ORDERS).where(_ORDERS.c.id == order_id).values(size_atoms=11)
            )
        assert storage.list_orders(engine, "m0") == []  # left out, and quarantined
        return order_id
    finally:
        engine.dispose()


def test_quarantine_list_show_and_release_an_edited_order(tmp_path: Path) -> None:
    """list prints a table with the record, show prints it with the row's raw values as
    JSON, release prints what it released and puts the order back as unfunded; list
    then shows nothing, and list --all shows the record released."""
    database = make_database(tmp_path / "crank.db", markets=1)
    order_id = _edited_order(database)
    db = ("--db-path", str(database))

    listed = crank("quarantine", "list", *db)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.strip().splitlines()
    assert header.split()[:5] == ["ID", "KIND", "ROW", "MARKET", "STATUS"]
    assert row.split()[:2] == ["1", "order"] and "quarantined" in row and "m0" in row

    shown = crank("quarantine", "show", "1", *db)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["row_id"] == order_id and record["status"] == "quarantined"
    assert "hash to" in record["reason"]
    assert record["raw"]["size_atoms"] == "00000000000000000011"  # as stored, undecoded
    assert record["raw"]["id"] == order_id

    released = crank("quarantine", "release", "1", *db)
    assert released.returncode == 0, released.stderr
    assert f"released record 1: order {order_id}" in released.stdout

    assert crank("quarantine", "list", *db).stdout.strip() == "no quarantined rows"
    everything = crank("quarantine", "list", "--all", *db)
    assert "released" in everything.stdout and order_id[:20] in everything.stdout
    engine = open_engine(sqlite_url(database))
    try:
        with engine.connect() as connection:
            status = connection.execute(
                _ORDERS.select().with_only_columns(_ORDERS.c.status).where(_ORDERS.c.id == order_id)
            ).scalar_one()
    finally:
        engine.dispose()
    assert status == "unfunded"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "7"], 1, "ID: no quarantine record 7"),
        (["release", "7"], 1, "ID: no quarantine record 7"),
        (["show", "seven"], 2, "ID: not a record id (an integer): 'seven'"),
        (["list", "--db-url", "mysql://nowhere/db"], 1, "database URL"),
    ],
)
def test_quarantine_errors_name_what_is_wrong(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    """An unknown or malformed record id, or a database URL it cannot use: one line on
    stderr naming what is wrong, no traceback."""
    database = make_database(tmp_path / "crank.db", markets=1)
    extra = [] if "--db-url" in args else ["--db-path", str(database)]
    result = crank("quarantine", *args, *extra)
    assert result.returncode == code, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_releasing_a_record_twice_says_it_was_released_already(tmp_path: Path) -> None:
    """The second release of the same record exits 1 naming the record and why."""
    database = make_database(tmp_path / "crank.db", markets=1)
    _edited_order(database)
    db = ("--db-path", str(database))
    assert crank("quarantine", "release", "1", *db).returncode == 0
    again = crank("quarantine", "release", "1", *db)
    assert again.returncode == 1
    assert "record 1" in again.stderr and "released already" in again.stderr
