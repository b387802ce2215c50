"""storage.quarantine.read_u64: amounts decoded row by row, as each engine returns them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from storage.quarantine import read_u64
from storage.types import U64_MAX


@pytest.mark.parametrize(
    ("value", "expected"),
    [(7, 7), ("00000000000000000042", 42), (Decimal(U64_MAX), U64_MAX), (Decimal("3"), 3)],
)
def test_an_amount_as_either_engine_returns_it_decodes_exactly(
    value: object, expected: int
) -> None:
    """An int, SQLite's zero-padded text and PostgreSQL's NUMERIC all give the int."""
    assert read_u64({"price_atoms": value}, "price_atoms") == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("abc", "is not an integer"),
        ("-5", "is not an integer"),
        ("1_000", "is not an integer"),
        (None, "is not an integer"),
        (True, "is not an integer"),
        (Decimal("1.5"), "is not an integer"),
        (Decimal("NaN"), "is not an integer"),
        (Decimal(-1), "is not an unsigned 64-bit integer"),
        (Decimal(U64_MAX + 1), "is not an unsigned 64-bit integer"),
    ],
)
def test_a_value_that_is_not_an_amount_is_refused_naming_the_column(
    value: object, why: str
) -> None:
    """Anything else raises ValueError naming the column and why (the row is then
    quarantined by its caller)."""
    with pytest.raises(ValueError, match=f"^price_atoms: .*{why}"):
        read_u64({"price_atoms": value}, "price_atoms")
