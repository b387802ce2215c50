"""The database-clock expression and the portable column types (compiled, not executed)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.dialects.mysql.base import MySQLDialect
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.types import TypeDecorator

from storage.clock import db_now
from storage.types import U64, U64_MAX, UtcDateTime

# SQLAlchemy leaves the psycopg dialect's constructor untyped.
POSTGRESQL = PGDialect_psycopg()  # type: ignore[no-untyped-call]
SQLITE = SQLiteDialect_pysqlite()
MYSQL = MySQLDialect()


def test_db_now_reads_the_postgresql_statement_clock() -> None:
    """On PostgreSQL, now is clock_timestamp() (the statement's real time), plus the offset."""
    sql = str(select(db_now(5)).compile(dialect=POSTGRESQL))
    assert "clock_timestamp()" in sql and "make_interval" in sql


def test_db_now_on_sqlite_renders_the_stored_text_form() -> None:
    """On SQLite, now is strftime('now') padded to microseconds, the text form datetimes are stored in."""
    sql = str(select(db_now(-1.5)).compile(dialect=SQLITE))
    assert "strftime('%Y-%m-%d %H:%M:%f', 'now'" in sql and "|| '000'" in sql


def test_db_now_refuses_other_databases() -> None:
    """There is no database clock rendering for engines crank-node does not support."""
    with pytest.raises(NotImplementedError, match="mysql"):
        str(select(db_now()).compile(dialect=MYSQL))


def test_utc_datetimes_are_stored_as_utc_and_naive_ones_are_refused() -> None:
    """An aware time is converted to UTC; a naive one is a programming error."""
    kind = UtcDateTime()
    plus_two = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert kind.process_bind_param(plus_two, SQLITE) == datetime(2026, 1, 1, 10)
    assert kind.process_bind_param(plus_two, POSTGRESQL) == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert kind.process_result_value(datetime(2026, 1, 1, 10), SQLITE) == datetime(
        2026, 1, 1, 10, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="naive"):
        kind.process_bind_param(datetime(2026, 1, 1), SQLITE)


def test_u64_text_form_on_sqlite_sorts_like_the_numbers() -> None:
    """On SQLite amounts are zero-padded to 20 digits, so text order is numeric order."""
    kind = U64()
    stored = [kind.process_bind_param(value, SQLITE) for value in (9, 10, U64_MAX)]
    assert stored == sorted(stored)
    assert kind.process_result_value(stored[-1], SQLITE) == U64_MAX


@pytest.mark.parametrize("value", [-1, U64_MAX + 1, True, 1.5])
def test_u64_refuses_values_outside_the_unsigned_64_bit_range(value: object) -> None:
    """Negative, too large, boolean and fractional amounts are refused before reaching SQL."""
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        U64().process_bind_param(value, POSTGRESQL)  # type: ignore[arg-type]  # wrong types on purpose


class _Lots(enum.IntEnum):
    ONE = 1


_BINDS: dict[type[Any], list[Any]] = {
    U64: [None, 0, 1, 9, 10, 2**63, U64_MAX, _Lots.ONE, -1, U64_MAX + 1, True, 1.5, "7"],
    UtcDateTime: [
        None,
        datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 1, 1, 12, tzinfo=ZoneInfo("UTC")),
        datetime(2026, 1, 1, 12, tzinfo=ZoneInfo("Asia/Tokyo")),
        datetime(2026, 1, 1),
    ],
}
_RESULTS: dict[type[Any], list[Any]] = {
    U64: [None, "00000000000000000009", f"{U64_MAX:020d}", 7, Decimal(U64_MAX)],
    UtcDateTime: [
        None,
        "2026-01-01 10:00:00.123456",
        datetime(2026, 1, 1, 10),
        datetime(2026, 1, 1, 10, tzinfo=UTC),
        datetime(2026, 1, 1, 19, tzinfo=ZoneInfo("Asia/Tokyo")),
    ],
}


def _outcome(processor: Any, value: Any) -> tuple[str, Any]:
    try:
        return "value", processor(value) if processor is not None else value
    except (ValueError, TypeError, AttributeError) as error:
        return type(error).__name__, str(error)


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRESQL], ids=["sqlite", "postgresql"])
@pytest.mark.parametrize("kind", [U64, UtcDateTime])
def test_the_fast_processors_give_what_the_type_decorator_methods_give(
    kind: type[Any], dialect: Any
) -> None:
    """U64's and UtcDateTime's own bind and result processors (made once per dialect, for
    speed) turn every value, in range or not, into what TypeDecorator's generic processors
    built on process_bind_param / process_result_value give: the same value of the same
    type, or the same error. On the type SQLAlchemy really uses for the dialect."""
    impl = kind().dialect_impl(dialect)
    for value in _BINDS[kind]:
        fast, generic = impl.bind_processor(dialect), TypeDecorator.bind_processor(impl, dialect)
        got, want = _outcome(fast, value), _outcome(generic, value)
        assert got == want and type(got[1]) is type(want[1]), value
        if isinstance(want[1], datetime):
            assert got[1].tzinfo is want[1].tzinfo, value
    # What the driver reports for the column: PostgreSQL's type oids (NUMERIC,
    # TIMESTAMPTZ); sqlite3 reports none.
    coltype = None if dialect is SQLITE else {U64: 1700, UtcDateTime: 1184}[kind]
    for value in _RESULTS[kind]:
        if dialect is SQLITE and kind is UtcDateTime and isinstance(value, datetime):
            continue  # SQLite's DATETIME reads text
        if dialect is POSTGRESQL and isinstance(value, str):
            continue  # PostgreSQL's columns are not text
        fast = impl.result_processor(dialect, coltype)
        generic = TypeDecorator.result_processor(impl, dialect, coltype)
        got, want = _outcome(fast, value), _outcome(generic, value)
        assert got == want and type(got[1]) is type(want[1]), value
        if isinstance(want[1], datetime):
            assert got[1].tzinfo is want[1].tzinfo, value
