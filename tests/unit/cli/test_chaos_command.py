"""`crank-node chaos`'s options: the defaults, and bad values refused naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from crank_node.cli.chaos import EXIT_USAGE, run
from crank_node.cli.main import build_parser


def test_the_chaos_defaults_are_three_nodes_four_markets_a_minute_and_a_short_ttl() -> None:
    """With no options: 3 nodes, 4 markets, 4 makers, 60 s at 20 orders/s, 100 ms slots,
    a 3 s lease TTL (membership every third of it), SQLite in var/chaos, a random seed."""
    args = build_parser("chaos").parse_args(["chaos"])
    assert (args.nodes, args.markets, args.makers, args.duration) == (3, 4, 4, 60.0)
    assert (args.rate, args.slot_ms, args.lease_ttl_ms, args.membership_interval_ms) == (
        20.0,
        100,
        3000,
        None,
    )
    assert (args.db_url, args.db_path, args.seed, args.report_json) == (None, None, None, None)
    assert args.workdir == Path("var/chaos")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nodes", "0"], "--nodes: must be within 1..16, got 0"),
        (["--duration", "1"], "--duration: must be within 5..86400, got 1"),
        (["--lease-ttl-ms", "100"], "--lease-ttl-ms: must be within 500..600000, got 100"),
        (["--db-url", "x", "--db-path", "y"], "not allowed with argument"),
    ],
)
def test_bad_chaos_arguments_are_refused_naming_the_argument(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser("chaos").parse_args(["chaos", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_membership_interval_not_below_the_ttl_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser("chaos").parse_args(
        [
            "chaos",
            "--lease-ttl-ms",
            "1000",
            "--membership-interval-ms",
            "1000",
            "--workdir",
            str(tmp_path / "work"),
        ]
    )
    assert run(args) == EXIT_USAGE
    assert "--membership-interval-ms must be below --lease-ttl-ms (1000)" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()
