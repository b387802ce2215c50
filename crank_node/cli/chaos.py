"""`crank-node chaos`: trade under faults, then prove nothing was lost or settled twice.

It starts localnet with three endpoints and --nodes `crank-node run` processes
on one database (an SQLite file in --workdir, or --db-url), creates --markets
markets with funded makers, and streams random signed orders to the nodes for
--duration seconds. Meanwhile, at random times reproducible from --seed, it:
SIGKILLs a node and restarts it; SIGSTOPs a node past its lease TTL, then
SIGCONTs it; takes an RPC endpoint down, or has it answer 429, lag slots behind,
drop the transactions sent to it, hold them to the last blocks of their validity
(late landing) or forget its older history (pruned); holds sends on one endpoint
while another lags (the pair that settles a fill twice if the protocol mixes two
views of the chain); puts one URL over four backends that disagree (healthy,
lagging, late landing, pruned: a load balancer); and holds the database's write
lock from another process for a few seconds. One endpoint is always left free.
The faults that must outlast a blockhash's validity last 151 slots and more: at
the default 100 ms slots, a run shorter than about 90 s may not see every kind.

Then it heals everything, waits until every fill is settled and nothing is left
to match, stops the nodes, and checks five invariants:

  1. every fill in the database was settled on chain exactly once (one
     transaction with its memo), and no settlement on chain lacks a fill;
  2. no order is filled beyond its size;
  3. every token account's balance is its starting balance plus the fills;
  4. per lock key, fencing tokens strictly increase, and no write under an old
     token was accepted;
  5. no lease is held by a dead node once its TTL has passed.

It prints a report (the faults with their times, each invariant's verdict and
details, the takeover times, the throughput) and writes it as JSON with
--report-json, with a timeline beside it (the same name, .svg; without
--report-json, timeline.svg in --workdir): a lane per node with its faults, the
markets it held and the fills it settled per second. Ctrl-C ends the orders early
(the checks still run); a second one cuts the waits short.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crank_node.harness.skeleton import MAX_SEED, StopRequests, bounded
from supervision.errors import CrankError

if TYPE_CHECKING:
    from crank_node.chaos.report import ChaosReport

__all__ = ["register", "run", "write_timeline"]

_EXIT_CODES = """exit codes:
  0  every invariant holds
  1  an invariant failed (the report says which, and the rows), or a bad setup
  2  bad usage
"""
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_WORKDIR = Path("var/chaos")
TIMELINE = "timeline.svg"  # in the workdir, without --report-json
LOGS = (
    "chaos.jsonl",
    "chaos-node-*.jsonl",
    "chaos-node-*.stderr",
    "monitor.json",
    "operator.token",
    TIMELINE,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "chaos",
        help="trade under injected faults, then check that nothing was lost or settled twice",
        description=__doc__,
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nodes", type=bounded(int, 1, 16), default=3, metavar="N")
    parser.add_argument("--markets", type=bounded(int, 1, 100), default=4, metavar="N")
    parser.add_argument("--makers", type=bounded(int, 2, 1000), default=4, metavar="N")
    parser.add_argument(
        "--duration",
        type=bounded(float, 5, 86_400),
        default=60.0,
        metavar="SECONDS",
        help="how long orders flow and faults happen (default: 60)",
    )
    parser.add_argument(
        "--seed",
        type=bounded(int, 0, MAX_SEED),
        metavar="N",
        help="seed of the faults and the orders (default: a random one, printed)",
    )
    parser.add_argument(
        "--rate",
        type=bounded(float, 0.1, 10_000),
        default=20.0,
        metavar="ORDERS_PER_S",
        help="orders sent per second (default: 20)",
    )
    database = parser.add_mutually_exclusive_group()
    database.add_argument(
        "--db-url",
        metavar="URL",
        help="an empty PostgreSQL (or SQLite) database (default: a new SQLite file in --workdir)",
    )
    database.add_argument("--db-path", type=Path, metavar="PATH", help="a new SQLite file")
    parser.add_argument(
        "--slot-ms",
        type=bounded(int, 5, 60_000),
        default=100,
        metavar="MS",
        help="localnet's slot time (default: 100)",
    )
    parser.add_argument(
        "--lease-ttl-ms",
        type=bounded(int, 500, 600_000),
        default=3_000,
        metavar="MS",
        help="the nodes' lease and settlement-claim TTL (default: 3000, so that takeovers "
        "happen within the run)",
    )
    parser.add_argument(
        "--membership-interval-ms",
        type=bounded(int, 50, 600_000),
        metavar="MS",
        help="the nodes' heartbeat and rebalance period (default: a third of the TTL)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=bounded(float, 1, 3_600),
        default=120.0,
        metavar="SECONDS",
        help="the longest wait for the last fills to settle (default: 120)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        metavar="DIR",
        help=f"database, wallet and logs (default: {DEFAULT_WORKDIR})",
    )
    parser.add_argument(
        "--netns",
        action="store_true",
        help="run each node in a network namespace of its own (root; needs --db-url on "
        "PostgreSQL) and add network faults: partitions from the database, from the RPC "
        "endpoints, from both or from one endpoint (packets dropped), latency and jitter, "
        "half-open database connections",
    )
    parser.add_argument(
        "--clock-skew",
        type=_clock_skew,
        action="append",
        metavar="NODE=OFFSET",
        help="run node NODE (from 1) with its wall clock OFFSET off (libfaketime), e.g. "
        "1=+1h; repeatable",
    )
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        metavar="KIND:NODE@START+DURATION",
        help="instead of the seeded schedule, exactly this network fault (--netns), e.g. "
        "net_db:1@6+7.5 (node 1 cut from the database from +6 s for 7.5 s); repeatable",
    )
    parser.add_argument("--report-json", type=Path, metavar="PATH", help="write the report here")
    parser.set_defaults(handler=run)


def _fault(text: str) -> Any:
    from crank_node.chaos.faults import parse_fault  # noqa: PLC0415  (localnet loads slowly)

    try:
        return parse_fault(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--fault {error}") from None


def _clock_skew(text: str) -> tuple[int, str]:
    from crank_node.chaos.netns import offset_seconds  # noqa: PLC0415

    node, _, offset = text.partition("=")
    try:
        offset_seconds(offset)
        return int(node), offset
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--clock-skew {text!r}: {error}") from None


def run(args: argparse.Namespace) -> int:
    from crank_node.chaos.run import ChaosRun  # noqa: PLC0415  (the chain and database libraries load slowly)
    from crank_node.demo.summary import write_json  # noqa: PLC0415
    from crank_node.harness.skeleton import fresh_workdir, new_wallet  # noqa: PLC0415
    from supervision.logs import configure_logging  # noqa: PLC0415

    membership_ms = args.membership_interval_ms or max(50, args.lease_ttl_ms // 3)
    problem = _check_pinned_faults(args)
    if problem:
        print(f"crank-node chaos: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if membership_ms >= args.lease_ttl_ms:
        print(
            f"crank-node chaos: error: --membership-interval-ms must be below --lease-ttl-ms "
            f"({args.lease_ttl_ms}), got {membership_ms}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        with StopRequests().handling_signals() as requests:
            workdir = fresh_workdir(args.workdir, LOGS)
            configure_logging(level="WARNING", json_path=workdir / "chaos.jsonl", file_level="INFO")
            seed = args.seed if args.seed is not None else secrets.randbelow(10_000)
            wallet = new_wallet(workdir / "wallet.json")
            chaos = ChaosRun(
                args,
                workdir,
                seed=seed,
                membership_ms=membership_ms,
                wallet=wallet,
                requests=requests,
            )
            report = chaos.run()
    except (OSError, CrankError) as error:
        print(f"crank-node chaos: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if report is None:
        return EXIT_FAILED
    print(report.text(), flush=True)
    timeline_svg = write_timeline(report, args)
    if args.report_json is not None:
        document = report.to_json()
        document["timeline_svg"] = None if timeline_svg is None else str(timeline_svg)
        write_json(args.report_json, document)
        print(f"report written to {args.report_json}")
    if timeline_svg is not None:
        print(f"timeline written to {timeline_svg}")
    return EXIT_OK if report.ok else EXIT_FAILED


def _check_pinned_faults(args: argparse.Namespace) -> str:
    """Why the --fault list cannot run ('' if it can)."""
    for fault in args.fault or ():
        if not args.netns:
            return "--fault names network faults: they need --netns"
        if fault.target > args.nodes:
            return f"--fault {fault.kind.value}: node {fault.target}, but --nodes is {args.nodes}"
        if fault.end_s > args.duration:
            return (
                f"--fault {fault.kind.value} ends at {fault.end_s:g}s, after --duration "
                f"{args.duration:g}s"
            )
    return ""


def write_timeline(report: ChaosReport, args: argparse.Namespace) -> Path | None:
    """The run's timeline as an SVG next to the JSON report (same stem), or in the
    workdir without one; its path (None if it could not be written, said why)."""
    from crank_node.chaos.timeline import render_svg  # noqa: PLC0415  (lazy like the rest)

    if report.timeline is None:
        return None
    report_json: Path | None = args.report_json
    path = report_json.with_suffix(".svg") if report_json is not None else args.workdir / TIMELINE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_svg(report.timeline))
    except OSError as error:
        print(f"crank-node chaos: cannot write the timeline: {error}", file=sys.stderr)
        return None
    return path
