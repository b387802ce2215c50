"""crank-node order: submit, cancel and look at orders on a running node (over HTTP).

    crank-node order submit --market M --side buy|sell --price-atoms N --size-atoms N
                            --pay-account KEY --receive-account KEY --client-order-id N
                            (--expiry-s UNIX_S | --ttl-s S) [--nonce N] --keypair FILE
    crank-node order cancel ORDER_ID --keypair FILE
    crank-node order show ORDER_ID
    crank-node order list --market M [--status open,unfunded,...] [--limit N]

``submit`` and ``cancel`` sign with the maker's keypair file (Solana CLI JSON,
readable by its owner only); nothing secret is sent. Every action takes --url
(the node's intake address; default http://$CRANK_INTAKE_ADDR, else
http://127.0.0.1:8786) and --json (print the node's JSON answer).

Exit codes: 0 done; 1 refused (the error names the field and why, on stderr;
nothing was stored); 2 bad usage; 3 the node cannot be reached or cannot take
the request now (not running, stopping, its chain or database not answering).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from crank_node.cli.status import format_table
from crank_node.harness.node_client import NodeClient, NodeRefused, NodeUnreachable, node_base_url
from crank_node.node.keypairs import KeypairError, load_keypair
from market import CancelRequest, Order, sign_cancel, sign_order
from supervision.errors import CrankError

__all__ = ["EXIT_REFUSED", "EXIT_UNREACHABLE", "register"]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3
_EXIT_CODES = """exit codes:
  0  done
  1  refused: the error names the field and why (stderr); nothing was stored
  2  bad usage
  3  the node cannot be reached, or cannot take the request now
"""
_RAW = argparse.RawDescriptionHelpFormatter
# The flag a user gives for each field the node may name in a refusal.
_FLAGS = {
    "market_id": "--market",
    "price_atoms": "--price-atoms",
    "size_atoms": "--size-atoms",
    "pay_account": "--pay-account",
    "receive_account": "--receive-account",
    "client_order_id": "--client-order-id",
    "expiry_s": "--expiry-s/--ttl-s",
    "nonce": "--nonce",
    "maker": "--keypair",
    "signature": "--keypair",
    "status": "--status",
    "limit": "--limit",
}


def register(subparsers: Any) -> None:
    """Add the ``order`` command group to ``crank-node``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the node's intake address (default: $CRANK_INTAKE_ADDR)")
    common.add_argument("--json", action="store_true", help="print the node's JSON answer")
    parser = subparsers.add_parser(
        "order",
        help="submit, cancel, show and list orders on a running node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="order_action", metavar="ACTION", required=True)
    _add_submit(actions, common)
    cancel = actions.add_parser(
        "cancel",
        parents=[common],
        epilog=_EXIT_CODES,
        formatter_class=_RAW,
        help="cancel an order (maker-signed)",
    )
    cancel.add_argument("order_id", metavar="ORDER_ID")
    cancel.add_argument("--keypair", required=True, metavar="FILE", help="the maker's keypair")
    cancel.set_defaults(handler=handle_cancel)
    show = actions.add_parser(
        "show", parents=[common], epilog=_EXIT_CODES, formatter_class=_RAW, help="print one order"
    )
    show.add_argument("order_id", metavar="ORDER_ID")
    show.set_defaults(handler=handle_show)
    listing = actions.add_parser(
        "list",
        parents=[common],
        epilog=_EXIT_CODES,
        formatter_class=_RAW,
        help="list a market's orders",
    )
    listing.add_argument("--market", required=True, metavar="MARKET_ID")
    listing.add_argument("--status", help="comma-separated statuses (default: all)")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (newest)")
    listing.set_defaults(handler=handle_list)


def _add_submit(actions: Any, common: argparse.ArgumentParser) -> None:
    submit = actions.add_parser(
        "submit",
        parents=[common],
        epilog=_EXIT_CODES,
        formatter_class=_RAW,
        help="sign and submit an order",
    )
    submit.add_argument("--market", required=True, metavar="MARKET_ID")
    submit.add_argument("--side", required=True, choices=("buy", "sell"))
    submit.add_argument("--price-atoms", required=True, type=int, help="quote atoms per lot")
    submit.add_argument("--size-atoms", required=True, type=int, help="base atoms")
    submit.add_argument("--pay-account", required=True, metavar="PUBKEY")
    submit.add_argument("--receive-account", required=True, metavar="PUBKEY")
    submit.add_argument("--client-order-id", required=True, type=int, metavar="N")
    expiry = submit.add_mutually_exclusive_group(required=True)
    expiry.add_argument("--expiry-s", type=int, metavar="UNIX_S", help="expires at this time")
    expiry.add_argument("--ttl-s", type=int, metavar="S", help="expires this long from now")
    submit.add_argument(
        "--nonce", type=int, help="unique per maker (default: the time in microseconds)"
    )
    submit.add_argument("--keypair", required=True, metavar="FILE", help="the maker's keypair")
    submit.set_defaults(handler=handle_submit)


# -- handlers ---------------------------------------------------------------------------------


def handle_submit(args: argparse.Namespace) -> int:
    def work(client: NodeClient) -> Any:
        maker = load_keypair(args.keypair)
        now_s = int(time.time())
        order = Order.from_json(
            {
                "market_id": args.market,
                "side": args.side,
                "price_atoms": args.price_atoms,
                "size_atoms": args.size_atoms,
                "maker": str(maker.pubkey()),
                "pay_account": args.pay_account,
                "receive_account": args.receive_account,
                "client_order_id": args.client_order_id,
                "expiry_s": args.expiry_s if args.ttl_s is None else now_s + args.ttl_s,
                "nonce": time.time_ns() // 1_000 if args.nonce is None else args.nonce,
            }
        )
        return client.post("/orders", sign_order(order, maker).to_json()).document

    return _run(args, work, lambda stored: f"order accepted\n{format_order(stored)}")


def handle_cancel(args: argparse.Namespace) -> int:
    def work(client: NodeClient) -> Any:
        maker = load_keypair(args.keypair)
        request = CancelRequest(args.order_id, maker.pubkey(), int(time.time()))
        signed = sign_cancel(request, maker)
        return client.post(f"/orders/{_quoted(args.order_id)}/cancel", signed.to_json()).document

    return _run(args, work, lambda stored: f"order cancelled\n{format_order(stored)}")


def handle_show(args: argparse.Namespace) -> int:
    def work(client: NodeClient) -> Any:
        return client.get(f"/orders/{_quoted(args.order_id)}").document

    return _run(args, work, format_order)


def handle_list(args: argparse.Namespace) -> int:
    def work(client: NodeClient) -> Any:
        query = {"market_id": args.market, "limit": str(args.limit)}
        if args.status:
            query["status"] = args.status
        return client.get(f"/orders?{urlencode(query)}").document

    return _run(args, work, lambda listed: format_orders(listed["orders"]))


Work = Callable[[NodeClient], Any]
Readable = Callable[[Any], str]


def _run(args: argparse.Namespace, work: Work, readable: Readable) -> int:
    """Run ``work(client)``, print its answer (``readable(answer)`` or JSON), and turn
    every refusal into a message on stderr and an exit code."""
    try:
        client = NodeClient(node_base_url(args.url))
        answer = work(client)
    except NodeUnreachable as error:
        return _fail(args, str(error), EXIT_UNREACHABLE)
    except NodeRefused as error:
        if args.json:
            print(json.dumps(error.document, indent=2))
        return _fail(args, _with_flag(error.field, error.reason), EXIT_REFUSED)
    except KeypairError as error:
        return _fail(args, f"keypair: {error}", EXIT_REFUSED)
    except CrankError as error:  # a MarketError from building or signing, naming the field
        field = getattr(error, "field", None)
        return _fail(args, _with_flag(field, getattr(error, "reason", str(error))), EXIT_REFUSED)
    print(json.dumps(answer, indent=2) if args.json else readable(answer))
    return EXIT_OK


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"crank-node order {args.order_action}: error: {message}", file=sys.stderr)
    return code


def _with_flag(field: str | None, reason: str) -> str:
    if field is None:
        return reason
    flag = _FLAGS.get(field)
    return f"{field} ({flag}): {reason}" if flag else f"{field}: {reason}"


def _quoted(path_part: str) -> str:
    return quote(path_part, safe="")


# -- output ------------------------------------------------------------------------------------

_ORDER_KEYS = (
    "order_id",
    "status",
    "market_id",
    "side",
    "price_atoms",
    "size_atoms",
    "remaining_atoms",
    "maker",
    "pay_account",
    "receive_account",
    "client_order_id",
    "nonce",
    "expiry_s",
    "created_at",
)


def format_order(order: dict[str, Any]) -> str:
    """One order as ``key: value`` lines, aligned."""
    width = max(len(key) for key in _ORDER_KEYS)
    return "\n".join(f"{key + ':':<{width + 1}} {order.get(key, '-')}" for key in _ORDER_KEYS)


def format_orders(orders: list[dict[str, Any]]) -> str:
    """Orders as a table, newest first (as the node lists them)."""
    rows = [
        (
            o["order_id"],
            o["side"],
            o["price_atoms"],
            o["size_atoms"],
            o["remaining_atoms"],
            o["status"],
            o["client_order_id"],
            o["created_at"],
        )
        for o in orders
    ]
    headers = ("ORDER ID", "SIDE", "PRICE", "SIZE", "REMAINING", "STATUS", "CLIENT ID", "CREATED")
    return format_table(headers, rows)
