"""Column types that behave the same on SQLite and PostgreSQL.

* :class:`UtcDateTime`: always a timezone-aware UTC ``datetime`` in Python.
  PostgreSQL stores ``timestamptz``; SQLite stores SQLAlchemy's text form
  ``YYYY-MM-DD HH:MM:SS.ffffff``, which :func:`storage.clock.db_now` also
  produces, so text comparisons in SQL order correctly.
* :class:`U64`: an SPL-token amount, an unsigned 64-bit integer. ``BIGINT`` is
  signed and an ``Approve`` of ``u64::MAX`` (common for "unlimited") does not
  fit, so PostgreSQL stores ``NUMERIC(20, 0)`` and SQLite a zero-padded
  20-digit string (whose text order is the numeric order). Amounts are
  compared in SQL but computed in Python: the writer holds the lease.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["U64", "U64_MAX", "UtcDateTime"]

U64_MAX = 2**64 - 1
_U64_DIGITS = 20

# Each type's bind_processor and result_processor handle the usual value (an int in
# range, a datetime in datetime.UTC) in a closure made once per dialect, and hand any
# other to process_bind_param / process_result_value, which stay the reference. The
# generic TypeDecorator versions called those methods, with the dialect, for every
# value, and these columns are in every order, fill and settlement row: py-spy put
# ~8% of a burst's GIL time in these conversions (benchmarks/pipeline_bench.py
# --profile), of which this takes the wrapping's share (~20% of a U64 bind, timeit).
_Processor = Callable[[Any], Any]


def _then(first: _Processor | None, second: _Processor | None) -> _Processor | None:
    """``first``, then ``second`` on its result (either may be None: no processing)."""
    if first is None or second is None:
        return first or second
    return lambda value: second(first(value))


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every engine."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: storage takes timezone-aware UTC times")
        utc = value.astimezone(UTC)
        # SQLite has no time zones: store the UTC wall time as text.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def bind_processor(self, dialect: Dialect) -> _Processor | None:
        sqlite, reference = dialect.name == "sqlite", self.process_bind_param

        def process(value: Any) -> Any:
            if value is not None and value.tzinfo is UTC:
                return value.replace(tzinfo=None) if sqlite else value
            return reference(value, dialect)

        return _then(process, self.impl_instance.bind_processor(dialect))

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: Any) -> _Processor | None:
        reference = self.process_result_value

        def process(value: Any) -> Any:
            if value is not None and value.tzinfo is None:  # SQLite's: stored as UTC
                return value.replace(tzinfo=UTC)
            return reference(value, dialect)

        return _then(self.impl_instance.result_processor(dialect, coltype), process)


class U64(TypeDecorator[int]):
    """An unsigned 64-bit integer (token amounts in atoms), exact on both engines."""

    impl = Numeric(_U64_DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(_U64_DIGITS))
        # Decimal results (asdecimal's default), turned into exact ints below.
        return dialect.type_descriptor(Numeric(_U64_DIGITS, 0))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
            raise ValueError(f"{value!r} is not an unsigned 64-bit integer")
        return f"{value:0{_U64_DIGITS}d}" if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)

    def bind_processor(self, dialect: Dialect) -> _Processor | None:
        sqlite, reference = dialect.name == "sqlite", self.process_bind_param

        def process(value: Any) -> Any:
            if type(value) is int and 0 <= value <= U64_MAX:
                return f"{value:0{_U64_DIGITS}d}" if sqlite else value
            return reference(value, dialect)

        return _then(process, self.impl_instance.bind_processor(dialect))

    def result_processor(self, dialect: Dialect, coltype: Any) -> _Processor | None:
        def process(value: Any) -> int | None:
            return None if value is None else int(value)

        return _then(self.impl_instance.result_processor(dialect, coltype), process)
