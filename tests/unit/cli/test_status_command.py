"""crank_node/cli/status.py's pure parts: the URL it reads and the tables it prints."""

from __future__ import annotations

import pytest

from crank_node.cli import status as status_command
from crank_node.cli.main import build_parser
from crank_node.cli.status import format_status, format_table, status_url
from crank_node.node.settings import DEFAULT_HTTP_ADDR
from tests.unit.cli import fake_status


def test_the_default_address_is_the_node_s_default_http_address() -> None:
    """The command's own copy of the default (kept to avoid importing pydantic)
    equals the one the node binds."""
    assert status_command.DEFAULT_HTTP_ADDR == DEFAULT_HTTP_ADDR


@pytest.mark.parametrize(
    ("given", "environ", "expected"),
    [
        (None, {}, "http://127.0.0.1:8787/status"),
        (None, {"CRANK_HTTP_ADDR": "10.0.0.5:9000"}, "http://10.0.0.5:9000/status"),
        ("127.0.0.1:9", {"CRANK_HTTP_ADDR": "10.0.0.5:9000"}, "http://127.0.0.1:9/status"),
        ("http://node:8787/", {}, "http://node:8787/status"),
        ("http://node:8787/status", {}, "http://node:8787/status"),
    ],
)
def test_status_url_comes_from_the_flag_then_crank_http_addr_then_the_default(
    given: str | None, environ: dict[str, str], expected: str
) -> None:
    """--url wins over CRANK_HTTP_ADDR, which wins over 127.0.0.1:8787; a bare
    HOST:PORT gets http://, a base URL gets /status."""
    assert status_url(given, environ) == expected


def test_format_table_aligns_columns_and_shows_none_as_a_dash() -> None:
    """Columns are as wide as their widest cell, None prints as '-', floats are short."""
    table = format_table(("NAME", "LATENCY"), [("a", 12.3456), ("longer-name", None)])
    assert table.splitlines() == [
        "NAME         LATENCY",
        "-----------  -------",
        "a            12.3",
        "longer-name  -",
    ]


def test_format_table_says_none_when_there_are_no_rows() -> None:
    """An empty table still has its headers, then '(none)'."""
    assert format_table(("KEY",), []).splitlines()[-1] == "(none)"


def test_format_status_prints_every_section_with_its_rows() -> None:
    """Summary, then actors (nested ones included, multi-line failures on one line),
    endpoints with breaker state, leases with fencing tokens and backpressure."""
    text = format_status(fake_status.status())
    assert "node:                  node-a" in text
    assert "uptime:                1:02:05" in text
    assert "settlements in flight: 4" in text
    assert "settled here:          120 confirmed, 1 failed" in text
    assert "markets matched:       m0, m1" in text
    rpc_row = next(line for line in text.splitlines() if line.startswith("node/rpc "))
    assert rpc_row.split()[2:5] == ["running", "2", "7"]
    assert rpc_row.endswith("RuntimeError('boom\\nsecond line')")
    assert any(line.startswith("node/pipeline/settle ") for line in text.splitlines())
    backup = next(line for line in text.splitlines() if line.startswith("backup "))
    assert backup.split()[2:4] == ["open", "-"]
    lease_row = next(line for line in text.splitlines() if line.startswith("market:m1 "))
    assert lease_row.split()[1:3] == ["m1", "12"]
    assert "markets gained: 3, lost: 2" in text
    assert "refused         critical 0, low 4, normal 0" in text


def test_format_status_says_which_part_did_not_answer() -> None:
    """A part reported as an error prints the error instead of a table, and the
    other sections still print."""
    text = format_status(fake_status.status(leases={"error": "TimeoutError()"}))
    assert "Leases\n(did not answer: TimeoutError())" in text
    assert "RPC endpoints\nENDPOINT" in text


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_timeout_that_is_not_a_positive_number_is_a_usage_error_naming_the_flag(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--timeout-s 0, negative or not a number: argparse exits 2 naming --timeout-s."""
    parser = build_parser("status")
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["status", "--timeout-s", value])
    assert exit_info.value.code == 2
    assert "argument --timeout-s: must be" in capsys.readouterr().err
