"""Markets are validated on construction, each error naming the field."""

from __future__ import annotations

import pytest

from market import InvalidField, InvalidMarket, InvalidSize, MarketError, NumberOutOfRange

from .factories import BASE_MINT, make_market


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"market_id": ""}, InvalidField, "market_id"),
        ({"market_id": "-SOL"}, InvalidField, "market_id"),
        ({"market_id": "x" * 33}, InvalidField, "market_id"),
        ({"base_mint": "So11111111111111111111111111111111111111112"}, InvalidField, "base_mint"),
        ({"quote_mint": BASE_MINT}, InvalidMarket, "quote_mint"),
        ({"base_decimals": 20}, InvalidMarket, "base_decimals"),
        ({"quote_decimals": -1}, NumberOutOfRange, "quote_decimals"),
        ({"lot_size_atoms": 0}, InvalidMarket, "lot_size_atoms"),
        ({"tick_size_atoms": 0}, InvalidMarket, "tick_size_atoms"),
        ({"tick_size_atoms": 2**64}, NumberOutOfRange, "tick_size_atoms"),
        ({"fee_payer": None}, InvalidField, "fee_payer"),
    ],
)
def test_a_bad_market_field_is_refused_by_name(
    changes: dict[str, object], error: type[MarketError], field: str
) -> None:
    """Each bad value raises its error class with ``field`` set and in the message."""
    with pytest.raises(error) as refused:
        make_market(**changes)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_quote_atoms_are_price_times_lots_exactly() -> None:
    """5 lots at 1_000 quote atoms per lot cost exactly 5_000 quote atoms."""
    assert make_market().quote_atoms(1_000, 5_000) == 5_000


def test_quote_atoms_refuse_a_partial_lot() -> None:
    """A base amount that is not whole lots is refused instead of rounded."""
    with pytest.raises(InvalidSize) as refused:
        make_market().quote_atoms(1_000, 5_001)
    assert refused.value.field == "size_atoms"


def test_an_error_without_a_reason_uses_its_docstring() -> None:
    """Each error class's docstring is its default reason, after the field."""
    assert str(InvalidSize("size_atoms")) == (
        "size_atoms: the size must be a positive multiple of the market's lot size."
    )
