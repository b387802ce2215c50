"""benchmarks/fill_floor.py: the floor it prints is made of real work, and bad sizes are refused."""

from __future__ import annotations

import pytest

from benchmarks import fill_floor


def test_every_part_of_the_floor_is_measured_and_the_total_is_their_sum() -> None:
    floor = fill_floor.measure(fills=12, batch=5)

    parts = dict(floor.parts())
    assert len(parts) == 5
    assert all(micros > 0 for micros in parts.values()), parts
    assert floor.total_us == pytest.approx(sum(parts.values()))


def test_a_fee_payer_of_its_own_adds_the_transaction_a_signature() -> None:
    # The marker seed's and the authority's; then the fee payer's as well.
    assert fill_floor.measure(fills=3, batch=3).signatures == 2
    assert fill_floor.measure(fills=3, batch=3, fee_payer=True).signatures == 3


@pytest.mark.parametrize(
    "argv", [["--fills", "0", "--batch", "3"], ["--fills", "3", "--batch", "-1"]]
)
def test_a_size_below_one_is_refused_by_name(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        fill_floor.main(argv)

    assert exit_.value.code == 2
    assert "fills and batch must be at least 1" in capsys.readouterr().err


def test_the_report_names_each_part_and_the_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert fill_floor.main(["--fills", "6", "--batch", "4"]) == 0

    out = capsys.readouterr().out
    assert "floor per fill, all parts" in out
    assert "rows: 8 written, 3 read" in out
    assert "share of a 0.3 ms per fill target" in out
