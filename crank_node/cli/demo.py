"""`crank-node demo`: the whole job on this machine, offline, start to finish.

It starts localnet in this process, creates markets with funded makers who
approve the settlement authority as delegate, starts a node (or --nodes N
`crank-node run` processes sharing one SQLite file), and has the makers send
random signed orders to the nodes' order intake (POST /orders) for --duration
seconds (default: until Ctrl-C or SIGTERM). Progress goes to stderr about once
a second, read from the database: orders, fills, settlements confirmed, failed
and pending, orders/s and fills/s.

At the end (the duration reached, or the first Ctrl-C) the makers stop, the
demo waits (at most 60 s) until no settlement is pending and no crossing orders
are left, and stops the node(s) gracefully; a second Ctrl-C cuts that short.
It then prints a summary and a reconciliation of the makers' on-chain balances
against the database's fills (--summary-json writes the same as JSON).

Each run starts afresh in --workdir: a new SQLite file (crank.db), a new wallet
(wallet.json, mode 0600: the settlement authority and fee payer), and the logs
(INFO and up, JSON lines: demo.jsonl, demo-node-N.jsonl); only warnings reach
the terminal. Follow a node with `crank-node status --url URL` meanwhile.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crank_node.harness.skeleton import MAX_SEED, StopRequests, bounded, fresh_workdir, new_wallet
from supervision.errors import CrankError

if TYPE_CHECKING:
    pass

_EXIT_CODES = """exit codes:
  0  the balances reconcile with the fills, every settlement confirmed, no order
     refused, and the node(s) stopped cleanly
  1  anything else (the summary's last line says what), or a bad setup
  2  bad usage
"""
EXIT_OK = 0
EXIT_FAILED = 1
DEFAULT_RATE_PER_S = 50.0
DEFAULT_WORKDIR = Path("var/demo")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="trade on an embedded localnet: orders, fills, settlements, reconcile",
        description=__doc__,
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    number = bounded
    parser.add_argument(
        "--duration",
        type=number(float, 0.1, 1e7),
        metavar="SECONDS",
        help="send orders this long (default: until Ctrl-C or SIGTERM)",
    )
    parser.add_argument(
        "--nodes",
        type=number(int, 1, 16),
        default=1,
        metavar="N",
        help="1: a node in this process (default); more: N node processes",
    )
    parser.add_argument("--markets", type=number(int, 1, 100), default=2, metavar="N")
    parser.add_argument("--makers", type=number(int, 2, 1000), default=4, metavar="N")
    parser.add_argument(
        "--rate",
        type=number(float, 0.1, 10_000),
        default=DEFAULT_RATE_PER_S,
        metavar="ORDERS_PER_S",
        help="orders sent per second (default: 50)",
    )
    parser.add_argument(
        "--seed",
        type=number(int, 0, MAX_SEED),
        metavar="N",
        help="seed of the order flow (default: a random one, printed)",
    )
    parser.add_argument(
        "--slot-ms",
        type=number(int, 5, 60_000),
        default=400,
        metavar="MS",
        help="localnet's slot time (default: 400, like a real cluster)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        metavar="DIR",
        help=f"database, wallet and logs (default: {DEFAULT_WORKDIR})",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="nodes write a trace line per actor message (crank-node trace reads them)",
    )
    parser.add_argument(
        "--summary-json", type=Path, metavar="PATH", help="also write the summary here as JSON"
    )
    parser.add_argument(
        "--http-addr",
        type=_http_addr,
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="node N listens on PORT+N-1 (default port 0: any free port)",
    )
    parser.set_defaults(handler=run)


def _http_addr(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT (e.g. 127.0.0.1:8787), got {text!r}")
    return text


def run(args: argparse.Namespace) -> int:
    from crank_node.demo.run import Demo  # noqa: PLC0415  (the chain and database libraries load slowly)
    from supervision.logs import configure_logging  # noqa: PLC0415

    try:
        with StopRequests().handling_signals() as requests:
            workdir = fresh_workdir(args.workdir)
            # The node's INFO lines go to the log file: the terminal shows progress and warnings.
            configure_logging(level="WARNING", json_path=workdir / "demo.jsonl", file_level="INFO")
            if args.trace:
                from supervision import set_tracing  # noqa: PLC0415

                set_tracing(True)
            seed = args.seed if args.seed is not None else secrets.randbelow(10_000)
            demo = Demo(args, workdir, seed, new_wallet(workdir / "wallet.json"), requests)
            summary = demo.run()
    except (OSError, CrankError) as error:  # the workdir or the wallet file
        print(f"crank-node demo: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if summary is None:
        return EXIT_FAILED
    print(summary.text(), flush=True)
    if args.summary_json is not None:
        from crank_node.demo.summary import write_json  # noqa: PLC0415

        write_json(args.summary_json, summary.to_json())
        print(f"summary written to {args.summary_json}")
    return EXIT_OK if summary.ok else EXIT_FAILED
