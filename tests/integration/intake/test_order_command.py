"""``crank-node order`` against a node's real HTTP server, in this process through the
command's own parser and handler (tests/e2e/test_order_command.py runs the launcher)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from solders.keypair import Keypair

import storage
from tests.integration.intake.conftest import (
    MARKET_ID,
    PRICE_ATOMS,
    SIZE_ATOMS,
    Desk,
    run_cli,
)

pytestmark = pytest.mark.localnet(advance_slots=10)


Changes = Callable[[Desk], dict[str, Any]]


def assert_refused(result: Any, field: str, action: str = "submit", code: int = 1) -> None:
    """Exit ``code``, one error line on stderr naming ``field``, nothing on stdout."""
    assert result.code == code, result.err
    line = result.error_line()
    assert re.match(rf"crank-node order {action}: error: {field}( \(--[a-z/-]+\))?: \w", line), line
    assert result.out == ""
    assert "Traceback" not in result.err


# -- submit ---------------------------------------------------------------------------------


def test_submit_signs_with_the_keypair_file_and_prints_the_stored_order(desk: Desk) -> None:
    """order submit signs the order with the maker's keypair file, the node stores it,
    and the command prints its id and status; --json prints the node's answer."""
    order = desk.buy()

    result = desk.cli(*desk.submit_argv(order))

    assert result.code == 0, result.err
    assert "order accepted" in result.out
    assert "order_id:" in result.out and order.order_id in result.out
    assert "status:" in result.out and "open" in result.out
    stored = storage.get_order(desk.engine, order.order_id)
    assert stored is not None and stored.signed.is_signed_by_maker()
    as_json = desk.cli(*desk.submit_argv(desk.buy(nonce=2, client_order_id=2)), "--json")
    assert json.loads(as_json.out)["status"] == "open"


def test_submit_with_ttl_sets_the_expiry_from_now(desk: Desk) -> None:
    """--ttl-s instead of --expiry-s: the order expires that long after the command ran,
    and the default nonce makes each submit distinct."""
    argv = desk.submit_argv(desk.buy())
    argv = argv[: argv.index("--expiry-s")] + argv[argv.index("--expiry-s") + 2 :]
    argv = argv[: argv.index("--nonce")] + argv[argv.index("--nonce") + 2 :]

    result = desk.cli(*argv, "--ttl-s", "600", "--json")

    assert result.code == 0, result.err
    answer = json.loads(result.out)
    stored = storage.get_order(desk.engine, answer["order_id"])
    assert stored is not None
    assert 0 < stored.order.expiry_s - int(desk.intake.now_s()) <= 600


SUBMIT_REFUSALS = [
    pytest.param(lambda d: {"market_id": "NO-SUCH"}, "market_id", id="unknown_market"),
    pytest.param(lambda d: {"price_atoms": 0}, "price_atoms", id="zero_price"),
    pytest.param(
        lambda d: {"price_atoms": PRICE_ATOMS + 1}, "price_atoms", id="price_off_the_tick"
    ),
    pytest.param(lambda d: {"size_atoms": 0}, "size_atoms", id="zero_size"),
    pytest.param(lambda d: {"size_atoms": SIZE_ATOMS + 1}, "size_atoms", id="size_off_the_lot"),
    pytest.param(lambda d: {"expiry_s": 1}, "expiry_s", id="expired"),
    pytest.param(
        lambda d: {"pay_account": d.base_account}, "pay_account", id="pay_account_of_the_wrong_mint"
    ),
    pytest.param(
        lambda d: {"receive_account": d.quote_account},
        "receive_account",
        id="receive_account_of_the_wrong_mint",
    ),
    pytest.param(
        lambda d: {"pay_account": d.stranger_quote_account},
        "pay_account",
        id="pay_account_of_another_owner",
    ),
    pytest.param(
        lambda d: {"receive_account": Keypair().pubkey()},
        "receive_account",
        id="receive_account_missing_on_chain",
    ),
]


@pytest.mark.parametrize(("changes", "field"), SUBMIT_REFUSALS)
def test_submit_of_an_invalid_order_exits_1_naming_the_field_and_stores_nothing(
    desk: Desk, changes: Changes, field: str
) -> None:
    """Each validation error the node answers: exit 1, the error line names the field
    (and the flag that set it), and the orders table is unchanged."""
    before = desk.orders_table()

    result = desk.cli(*desk.submit_argv(desk.buy(**changes(desk))))

    assert_refused(result, field)
    assert desk.orders_table() == before


def test_submit_of_a_duplicate_client_order_id_exits_1_naming_it(desk: Desk) -> None:
    """A second submit reusing the client order id (new nonce) is refused naming
    client_order_id (--client-order-id); only the first order is stored."""
    assert desk.cli(*desk.submit_argv(desk.buy())).code == 0
    before = desk.orders_table()

    result = desk.cli(*desk.submit_argv(desk.buy(nonce=2)))

    assert_refused(result, "client_order_id")
    assert "(--client-order-id)" in result.error_line()
    assert desk.orders_table() == before


def test_submit_signed_by_a_keypair_that_does_not_own_the_accounts_is_refused(
    desk: Desk,
) -> None:
    """Signing with another keypair makes it the maker, whose accounts these are not:
    refused naming pay_account, nothing stored."""
    other = desk.keypair_file("other")

    result = desk.cli(*desk.submit_argv(desk.buy(), keypair_file=other))

    assert_refused(result, "pay_account")
    assert "not the maker" in result.error_line()
    assert desk.orders_table() == []


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--price-atoms", "-5", "price_atoms"),
        ("--pay-account", "not-a-key", "pay_account"),
        ("--market", "no spaces allowed", "market_id"),
    ],
)
def test_submit_refuses_unrepresentable_values_before_asking_the_node(
    desk: Desk, flag: str, value: str, field: str
) -> None:
    """Values an order cannot hold at all are refused by the command itself, naming the
    field: exit 1, nothing sent, nothing stored."""
    argv = desk.submit_argv(desk.buy())
    argv[argv.index(flag) + 1] = value

    result = desk.cli(*argv)

    assert_refused(result, field)
    assert desk.orders_table() == []


def test_a_keypair_file_others_can_read_is_refused_and_nothing_is_sent(desk: Desk) -> None:
    """A keypair file readable by group or others: exit 1 naming the file and the fix."""
    desk.maker_file.chmod(0o644)

    result = desk.cli(*desk.submit_argv(desk.buy()))

    assert result.code == 1
    assert "chmod 600" in result.error_line()
    assert desk.orders_table() == []


def test_missing_flags_are_a_usage_error_exit_2(desk: Desk) -> None:
    """argparse's own exit code 2 for a submit without --keypair or without an expiry."""
    argv = desk.submit_argv(desk.buy())
    without_keypair = argv[: argv.index("--keypair")]
    without_expiry = argv[: argv.index("--expiry-s")] + argv[argv.index("--expiry-s") + 2 :]

    for broken in (without_keypair, without_expiry):
        with pytest.raises(SystemExit) as exit_info:
            desk.cli(*broken)
        assert exit_info.value.code == 2
    assert desk.orders_table() == []


def test_a_node_that_does_not_answer_exits_3(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening at --url: exit 3 saying nothing answers there."""
    desk.server.stop()

    result = desk.cli(*desk.submit_argv(desk.buy()))

    assert result.code == 3
    assert "nothing answers at" in result.error_line()
    assert desk.orders_table() == []


def test_a_node_whose_intake_is_closed_exits_3(desk: Desk) -> None:
    """A node that is stopping (intake closed) answers 503: exit 3, the reason shown."""
    desk.intake.close()

    result = desk.cli(*desk.submit_argv(desk.buy()))

    assert result.code == 3
    assert "node is stopping" in result.error_line()
    assert desk.orders_table() == []


# -- cancel, show, list ----------------------------------------------------------------------


def test_cancel_show_and_list_an_order(desk: Desk) -> None:
    """After a submit: show prints it open; list prints it in a table; cancel by the maker
    prints it cancelled; list --status open then shows none."""
    order = desk.buy()
    assert desk.cli(*desk.submit_argv(order)).code == 0
    url = ("--url", desk.url)

    shown = desk.cli("order", "show", order.order_id, *url)
    listed = desk.cli("order", "list", "--market", MARKET_ID, *url)
    cancelled = desk.cli("order", "cancel", order.order_id, "--keypair", str(desk.maker_file), *url)
    open_now = desk.cli("order", "list", "--market", MARKET_ID, "--status", "open", *url, "--json")

    assert shown.code == 0 and order.order_id in shown.out and "open" in shown.out
    assert listed.code == 0 and listed.out.splitlines()[0].startswith("ORDER ID")
    assert order.order_id in listed.out
    assert cancelled.code == 0 and "order cancelled" in cancelled.out
    assert "cancelled" in cancelled.out.split("status:")[1].splitlines()[0]
    assert json.loads(open_now.out)["orders"] == []
    stored = storage.get_order(desk.engine, order.order_id)
    assert stored is not None and stored.status == "cancelled"


def test_cancel_with_another_keypair_exits_1_naming_the_maker(desk: Desk) -> None:
    """A cancel signed by a keypair that is not the order's maker is refused naming
    maker (--keypair); the order stays open."""
    order = desk.buy()
    desk.cli(*desk.submit_argv(order))
    before = desk.orders_table()

    result = desk.cli(
        "order",
        "cancel",
        order.order_id,
        "--keypair",
        str(desk.keypair_file("other")),
        "--url",
        desk.url,
    )

    assert_refused(result, "maker", action="cancel")
    assert "(--keypair)" in result.error_line()
    assert desk.orders_table() == before


def test_show_and_cancel_of_an_unknown_order_exit_1_naming_order_id(desk: Desk) -> None:
    """An order id never stored: show and cancel exit 1 naming order_id."""
    unknown = desk.buy(nonce=77).order_id
    url = ("--url", desk.url)

    assert_refused(desk.cli("order", "show", unknown, *url), "order_id", action="show")
    assert_refused(
        desk.cli("order", "cancel", unknown, "--keypair", str(desk.maker_file), *url),
        "order_id",
        action="cancel",
    )
    assert_refused(
        desk.cli("order", "cancel", "not-an-id!", "--keypair", str(desk.maker_file), *url),
        "order_id",
        action="cancel",
    )


def test_list_of_an_unknown_market_or_status_exits_1_naming_the_field(desk: Desk) -> None:
    """list --market of no market names market_id; a bad --status names status."""
    url = ("--url", desk.url)

    assert_refused(
        desk.cli("order", "list", "--market", "NO-SUCH", *url), "market_id", action="list"
    )
    assert_refused(
        desk.cli("order", "list", "--market", MARKET_ID, "--status", "gone", *url),
        "status",
        action="list",
    )


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """order --help says what exits 1, 2 and 3 mean."""
    with pytest.raises(SystemExit):
        run_cli(capsys, "order", "submit", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "1 refused" in text and "2 bad usage" in text and "3 the node cannot be reached" in text
