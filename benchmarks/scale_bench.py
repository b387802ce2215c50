"""Several crank nodes on one lock database: throughput, takeover after SIGKILL, SIGTERM drain.

    python3 benchmarks/scale_bench.py [--nodes 1 2 3] [--backends sqlite postgresql]
        [--pairs 3000] [--kills 3] [--drain-pairs 1500] [--lease-ttl-ms 3000]
        [--slot-ms 400] [--pg-url URL]

For each database backend and each node count N, on 4 markets and 4 makers, one
after the other in one run (about a minute per line on this machine):

1. **Throughput.** ``--pairs`` crossing pairs (one lot each, every pair exactly one
   fill; ``pipeline_bench.crossing_pairs``) are stored in one transaction, then N
   `crank-node run` processes start on a fresh database (an SQLite file, or a new
   PostgreSQL schema) and localnet. Fills confirmed per second: from the first fill
   written to the last settlement confirmed, read from the database afterwards, with
   each fill's latency (settlement written -> its ``confirmed`` history row). The
   CPU the node processes and this process (localnet runs in it) used in that
   window, and the machine's busy share of its cores, say what limits the scaling.
2. **Takeover** (N >= 2). ``--kills`` times: once every node holds its fair share,
   the node holding the most markets is killed with SIGKILL; the time from the kill
   until every one of its markets is held by another node (the lock table, polled
   every 20 ms). The bound is the lease TTL plus one renewal interval (TTL / 3).
   Then the node is restarted.
3. **Drain.** ``--drain-pairs`` more pairs are stored; once a tenth of them are
   confirmed (the pipeline is busy), every node gets SIGTERM: the time until each
   process has exited, its exit code, and what was left for recovery.
4. **Recovery and reconciliation.** One node is started again and settles what
   was left; then every maker token account's balance on chain must equal its
   starting balance plus the database's confirmed fills.

Everything is measured in one run on one machine; compare the lines with each
other (ratios), not with another machine's. It asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# Run from a checkout like bin/crank-node: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine, make_url

import storage
from benchmarks.pipeline_bench import (
    crossing_pairs,
    percentile,
    phase_figures,
    process_cpu_s,
)
from crank_node.demo.nodes import http_addrs
from crank_node.demo.progress import market_holders, read_counts
from crank_node.harness.node_client import NodeClient, NodeRefused, NodeUnreachable
from crank_node.harness.processes import NodeProcesses, NodeSetup
from crank_node.harness.scenario import Scenario, build_scenario, reconcile
from crank_node.harness.skeleton import new_wallet
from localnet import LocalnetConfig, LocalnetServer
from storage.models import Settlement, table_of
from supervision.logs import configure_logging

MARKETS, MAKERS = 4, 4
FUNDING_ATOMS = 10**15  # per maker and mint: a fill moves about 10^4 atoms
START_TIMEOUT_S = 90.0
SETTLE_TIMEOUT_S = 180.0
SHARES_TIMEOUT_S = 60.0
TAKEOVER_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0
POLL_S = 0.1
HOLDERS_POLL_S = 0.02
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_SETTLEMENTS = table_of(Settlement)


@dataclass
class RunResult:
    backend: str
    nodes: int
    fills: int = 0
    window_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    node_cpu_s: float = 0.0
    bench_cpu_s: float = 0.0
    machine_busy: float = 0.0  # share of all cores busy in the window
    takeovers_s: list[float | None] = field(default_factory=list)
    drain_s: list[float] = field(default_factory=list)
    drain_codes: list[int | None] = field(default_factory=list)
    left_for_recovery: int = 0
    reconciled: str = "not checked"
    problems: list[str] = field(default_factory=list)

    @property
    def fills_per_s(self) -> float:
        return self.fills / self.window_s if self.window_s > 0 else 0.0


class CpuSampler(threading.Thread):
    """Every ``POLL_S``: the wall clock, the machine's busy and total jiffies, and the
    CPU seconds of the watched processes; read back for any wall-clock window."""

    def __init__(self, pids: Callable[[], Sequence[int]]) -> None:
        super().__init__(name="bench-cpu", daemon=True)
        self._pids = pids
        self._done = threading.Event()
        self.samples: list[tuple[float, int, int, float, float]] = []

    def run(self) -> None:
        while not self._done.wait(POLL_S):
            busy, total = _machine_jiffies()
            nodes = sum(process_cpu_s(pid) or 0.0 for pid in self._pids())
            self.samples.append((time.time(), busy, total, nodes, sum(os.times()[:2])))

    def stop(self) -> None:
        self._done.set()
        self.join(5)

    def window(self, start: float, end: float) -> tuple[float, float, float]:
        """(node CPU s, this process's CPU s, machine busy share) from ``start`` to ``end``."""
        inside = [s for s in self.samples if start - POLL_S <= s[0] <= end + POLL_S]
        if len(inside) < 2:
            return 0.0, 0.0, 0.0
        first, last = inside[0], inside[-1]
        busy = (last[1] - first[1]) / max(1, last[2] - first[2])
        return last[3] - first[3], last[4] - first[4], busy


def _machine_jiffies() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


# -- databases -------------------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, workdir: Path, key: str, pg_url: str) -> Iterator[str]:
    """A new empty database's URL: an SQLite file, or a PostgreSQL schema dropped after."""
    if backend == "sqlite":
        yield storage.sqlite_url(workdir / f"{key}.db")
        return
    schema = f"scale_bench_{os.getpid()}_{key}".replace("-", "_")
    admin = storage.open_engine(pg_url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in pg_url else "?"
        yield f"{pg_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def pg_reachable(url: str) -> str | None:
    """None if a PostgreSQL server answers at ``url``, else why not."""
    try:
        engine = storage.open_engine(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except storage.StorageError as error:
        return str(error)
    return None


def confirmed_count(engine: Engine) -> int:
    stmt = select(func.count()).where(_SETTLEMENTS.c.status == "confirmed")
    with storage.read_transaction(engine, "bench.confirmed") as connection:
        return int(connection.execute(stmt).scalar_one())


def wait_until(predicate: Callable[[], bool], timeout_s: float, every_s: float = POLL_S) -> bool:
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()  # never set: a bounded wait between polls
    while True:
        try:
            if predicate():
                return True
        except storage.StorageError:
            pass  # busy under load: ask again
        if time.monotonic() > deadline:
            return False
        pause.wait(every_s)


# -- one line of the table ---------------------------------------------------------------------


class Run:
    """One backend, N nodes: the four steps of the module docstring."""

    def __init__(
        self,
        args: argparse.Namespace,
        chain: LocalnetServer,
        scenario: Scenario,
        *,
        wallet_path: Path,
        workdir: Path,
        backend: str,
        count: int,
        first_id: int,
    ) -> None:
        self.args, self.chain, self.scenario = args, chain, scenario
        self.wallet_path, self.workdir = wallet_path, workdir
        self.result = RunResult(backend, count)
        self.count = count
        self.first_id = first_id
        self.ttl_s = args.lease_ttl_ms / 1000

    def run(self) -> RunResult:
        key = f"{self.result.backend}-{self.count}"
        with fresh_database(self.result.backend, self.workdir, key, self.args.pg_url) as url:
            engine = storage.open_engine(url)
            try:
                storage.upgrade(engine)
                for market in self.scenario.markets:
                    storage.insert_market(engine, market)
                self._steps(engine, url, key)
            finally:
                engine.dispose()
        return self.result

    def _steps(self, engine: Engine, url: str, key: str) -> None:
        before = self.scenario.snapshot_balances(self.chain)
        nodes = self._nodes(url, key)
        sampler = CpuSampler(lambda: [p.pid for p in nodes.processes if p.poll() is None])
        try:
            sampler.start()
            self._throughput(engine, nodes, sampler)
            if self.count >= 2:
                self._takeovers(engine, nodes)
            self._drain(engine, nodes)
            self._recover(engine, nodes)
        finally:
            sampler.stop()
            for problem in nodes.stop():
                self.result.problems.append(problem)
        check = reconcile(before, self.scenario.snapshot_balances(self.chain), engine)
        self.result.reconciled = (
            f"ok ({check.accounts_checked} accounts)"
            if check.ok
            else f"FAILED ({len(check.mismatches)} accounts differ)"
        )

    def _nodes(self, url: str, key: str) -> NodeProcesses:
        overrides = {
            "lease_ttl_ms": self.args.lease_ttl_ms,
            "membership_interval_ms": self.args.lease_ttl_ms // 3,
            "settlement_claim_ttl_ms": self.args.lease_ttl_ms,
            "shutdown_timeout_ms": 20_000,
            "polling_interval_ms": 100,
        }
        sqlite_path = self.workdir / f"{key}.db" if self.result.backend == "sqlite" else None
        setup = NodeSetup(
            sqlite_path,
            self.chain.urls,
            self.wallet_path,
            self.workdir,
            db_url=None if sqlite_path else url,
            overrides=overrides,
        )
        return NodeProcesses(
            setup,
            http_addrs("127.0.0.1:0", self.count, processes=True),
            prefix=f"scale-{key}",
            stderr_to_files=True,
        )

    def _throughput(self, engine: Engine, nodes: NodeProcesses, sampler: CpuSampler) -> None:
        pairs = crossing_pairs(self.scenario, self.args.pairs, self.first_id)
        storage.store_orders(engine, [order for pair in pairs for order in pair])
        nodes.start(threading.Event())
        if not wait_until(lambda: confirmed_count(engine) >= len(pairs), SETTLE_TIMEOUT_S):
            self.result.problems.append(f"throughput: not all {len(pairs)} pairs confirmed")
        figures = phase_figures("burst", engine)
        self.result.fills = figures.row.count
        self.result.window_s = figures.row.elapsed_s
        self.result.latencies_s = figures.row.latencies_s
        end = time.time()
        start = end - figures.row.elapsed_s
        node_cpu, bench_cpu, busy = sampler.window(start, end)
        self.result.node_cpu_s, self.result.bench_cpu_s = node_cpu, bench_cpu
        self.result.machine_busy = busy

    def _fair(self, engine: Engine, nodes: NodeProcesses) -> dict[str, list[str]]:
        """Wait (bounded) until every node holds its fair share; who holds what then."""
        markets = [market.market_id for market in self.scenario.markets]
        wanted = {node: storage.fair_share(len(markets), nodes.ids, node) for node in nodes.ids}
        held: dict[str, list[str]] = {}

        def fair() -> bool:
            nonlocal held
            holders = market_holders(engine)
            held = {node: [m for m, h in holders.items() if h == node] for node in nodes.ids}
            return set(holders) >= set(markets) and all(
                len(held[node]) == wanted[node] for node in nodes.ids
            )

        if not wait_until(fair, SHARES_TIMEOUT_S):
            self.result.problems.append(f"fair shares not reached: {held}")
        return held

    def _takeovers(self, engine: Engine, nodes: NodeProcesses) -> None:
        for _ in range(self.args.kills):
            held = self._fair(engine, nodes)
            victim = max(nodes.ids, key=lambda node: len(held.get(node, [])))
            index = nodes.ids.index(victim) + 1
            markets = set(held.get(victim, []))
            killed_at = time.monotonic()
            nodes.kill(index)

            done = wait_until(
                lambda gone=victim, lost=markets: _taken_over(engine, gone, lost),
                TAKEOVER_TIMEOUT_S,
                HOLDERS_POLL_S,
            )
            self.result.takeovers_s.append(time.monotonic() - killed_at if done else None)
            nodes.respawn(index)

    def _drain(self, engine: Engine, nodes: NodeProcesses) -> None:
        """Step 3 (module docstring)."""
        self._fair(engine, nodes)
        already = confirmed_count(engine)
        pairs = crossing_pairs(self.scenario, self.args.drain_pairs, self.first_id + 10**6)
        storage.store_orders(engine, [order for pair in pairs for order in pair])
        busy_at = already + max(1, len(pairs) // 10)
        wait_until(lambda: confirmed_count(engine) >= busy_at, SETTLE_TIMEOUT_S)
        signalled_at = time.monotonic()
        for process in nodes.processes:
            process.send_signal(signal.SIGTERM)
        for process in nodes.processes:
            remaining = max(0.1, signalled_at + DRAIN_TIMEOUT_S - time.monotonic())
            if wait_until(lambda p=process: p.poll() is not None, remaining, HOLDERS_POLL_S):
                self.result.drain_s.append(time.monotonic() - signalled_at)
            self.result.drain_codes.append(process.poll())
        self.result.left_for_recovery = read_counts(engine).pending

    def _recover(self, engine: Engine, nodes: NodeProcesses) -> None:
        for process in nodes.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        nodes.respawn(1)
        health = NodeClient(nodes.urls[0], timeout_s=2.0)
        if not wait_until(lambda: _answers(health), START_TIMEOUT_S):
            self.result.problems.append("recovery: the restarted node never answered /health")
        total = self.args.pairs + self.args.drain_pairs
        if not wait_until(lambda: confirmed_count(engine) >= total, SETTLE_TIMEOUT_S):
            self.result.problems.append(f"recovery: not all {total} pairs confirmed")


def _answers(client: NodeClient) -> bool:
    try:
        client.get("/health")
    except (NodeUnreachable, NodeRefused):
        return False
    return True


def _taken_over(engine: Engine, victim: str, markets: set[str]) -> bool:
    """Whether every one of ``markets`` is held by a node other than ``victim``."""
    holders = market_holders(engine)
    return all(holders.get(market) not in (None, victim) for market in markets)


# -- the report --------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value * 1000:7.0f}"


def print_results(results: Sequence[RunResult], bound_s: float, cores: int) -> None:
    print(
        f"  {'backend':<10} {'nodes':>5} {'fills':>6} {'fills/s':>8} {'vs 1':>5} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'node cpu s':>10} {'busy':>5} "
        f"{'takeover s (median/worst)':>26} {'drain s (max)':>13} {'left':>5}  reconcile"
    )
    one = {r.backend: r.fills_per_s for r in results if r.nodes == 1}
    for r in results:
        taken = [t for t in r.takeovers_s if t is not None]
        takeover = (
            f"{percentile(taken, 0.5):.2f} / {max(taken):.2f} ({len(taken)}/{len(r.takeovers_s)})"
            if taken
            else ("-" if not r.takeovers_s else "none in time")
        )
        drain = f"{max(r.drain_s):.2f}" if r.drain_s else "-"
        codes = "" if all(code == 0 for code in r.drain_codes) else f" exits {r.drain_codes}"
        ratio = r.fills_per_s / one[r.backend] if one.get(r.backend) else float("nan")
        print(
            f"  {r.backend:<10} {r.nodes:>5} {r.fills:>6} {r.fills_per_s:>8.0f} {ratio:>5.2f} "
            f"{_ms(percentile(r.latencies_s, 0.5))} {_ms(percentile(r.latencies_s, 0.99))} "
            f"{r.node_cpu_s:>10.1f} {r.machine_busy:>5.0%} {takeover:>26} {drain + codes:>13} "
            f"{r.left_for_recovery:>5}  {r.reconciled}"
        )
        for problem in r.problems:
            print(f"      problem: {problem}")
    print(
        f"  takeover bound: lease TTL + one renewal interval = {bound_s:.1f} s. busy: share of "
        f"the machine's {cores} cores busy from the first fill to the last confirmation "
        "(node processes, localnet in this process, the database server)."
    )
    for r in results:
        if r.fills:
            print(
                f"  {r.backend} x{r.nodes}: {1000 * r.node_cpu_s / r.fills:.2f} ms of node CPU "
                f"per fill, {1000 * r.bench_cpu_s / r.fills:.2f} ms of localnet's (this process)"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument("--pairs", type=int, default=3000, help="throughput: pairs stored")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per node count >= 2")
    parser.add_argument("--drain-pairs", type=int, default=1500)
    parser.add_argument("--lease-ttl-ms", type=int, default=3000)
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument("--pg-url", default=os.environ.get("CRANK_TEST_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    configure_logging(level="WARNING", json_path=workdir / "bench.jsonl", file_level="INFO")
    backends = list(args.backends)
    if "postgresql" in backends and (why := pg_reachable(args.pg_url)) is not None:
        print(f"postgresql skipped: no server at {make_url(args.pg_url).host}: {why}")
        backends.remove("postgresql")
    wallet = new_wallet(workdir / "wallet.json")
    chain = LocalnetServer(LocalnetConfig(port=0, endpoints=1, slot_ms=args.slot_ms)).start()
    results = []
    try:
        scenario = build_scenario(
            chain,
            None,
            markets=MARKETS,
            makers=MAKERS,
            settlement_authority=wallet,
            fee_payer=wallet,
            base_atoms_per_maker=FUNDING_ATOMS,
            quote_atoms_per_maker=FUNDING_ATOMS,
            seed=args.seed,
        )
        print(
            f"crank-node scale-out: {MARKETS} markets, {MAKERS} makers, {args.pairs} pairs "
            f"(then {args.drain_pairs} for the drain), localnet slot {args.slot_ms} ms, lease "
            f"TTL {args.lease_ttl_ms} ms; {os.cpu_count()} cores; workdir {workdir}",
            flush=True,
        )
        first_id = 1
        for backend in backends:
            for count in args.nodes:
                run = Run(
                    args,
                    chain,
                    scenario,
                    wallet_path=workdir / "wallet.json",
                    workdir=workdir,
                    backend=backend,
                    count=count,
                    first_id=first_id,
                )
                results.append(run.run())
                first_id += 10**7
                line = results[-1]
                print(f"  done: {backend} x{count}: {line.fills_per_s:.0f} fills/s", flush=True)
    finally:
        chain.stop()
    print_results(results, 4 * args.lease_ttl_ms / 3000, os.cpu_count() or 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
