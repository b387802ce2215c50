"""One `crank-node demo` run, step by step (see :mod:`crank_node.cli.demo` for what it shows):
set up the chain, the database and the node(s); send orders; drain; stop;
reconcile; summarise. Everything it starts, it stops, whatever happens."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from solders.keypair import Keypair
from sqlalchemy.engine import Engine

from crank_node.demo.nodes import (
    DemoNodes,
    InProcessNode,
    NodeProcesses,
    NodeSetup,
    http_addrs,
    node_id,
)
from crank_node.demo.orders import OrderSubmitter, SubmissionTally
from crank_node.demo.progress import (
    DemoCounts,
    ProgressMeter,
    crossing_markets,
    fill_to_confirmed_ms,
    market_holders,
    read_counts,
)
from crank_node.demo.summary import DemoSummary, RunShape, problems_of
from crank_node.harness.order_flow import OrderFlow
from crank_node.harness.scenario import Scenario, build_scenario, reconcile
from crank_node.harness.skeleton import StopRequests
from localnet import LocalnetConfig, LocalnetServer
from storage import fair_share, open_engine, sqlite_url, upgrade
from supervision.errors import CrankError

__all__ = ["Demo"]

DRAIN_TIMEOUT_S = 60.0  # the most the end waits for nothing left to match or settle
TICK_S = 1.0  # progress lines and drain checks

ATOMS_PER_MAKER = 10**12  # hours of orders at the default rate; the flow never overdraws
CROSS_PROBABILITY = 0.5
MARKETS_SHARED_TIMEOUT_S = 30.0


class Demo:
    """Runs once: :meth:`run` returns the summary, or None if the setup failed."""

    def __init__(
        self,
        args: argparse.Namespace,
        workdir: Path,
        seed: int,
        wallet: Keypair,
        requests: StopRequests,
    ) -> None:
        self.args = args
        self.workdir = workdir
        self.wallet = wallet
        self.requests = requests
        self.shape = RunShape(
            nodes=args.nodes,
            markets=args.markets,
            makers=args.makers,
            seed=seed,
            rate_per_s=args.rate,
            slot_ms=args.slot_ms,
            workdir=str(workdir),
        )
        self.server: LocalnetServer | None = None
        self.engine: Engine | None = None
        self.nodes: DemoNodes | None = None
        self.submitter: OrderSubmitter | None = None
        self.meter = ProgressMeter()
        self.started_at = time.monotonic()

    def run(self) -> DemoSummary | None:
        try:
            return self._run()
        except CrankError as error:
            _say(f"crank-node demo: error: {error}")
            return None
        finally:
            self._close()

    # -- the steps -----------------------------------------------------------------------

    def _run(self) -> DemoSummary:
        server, engine, scenario = self._set_up_chain_and_database()
        before = scenario.snapshot_balances(server)
        nodes = self._start_nodes(server)
        self._wait_for_markets_shared(engine, [m.market_id for m in scenario.markets])
        tally, trading_s = self._trade(engine, scenario, nodes.intake_urls)
        self._drain(engine)
        elapsed_s = time.monotonic() - self.started_at
        which = "the node" if self.shape.nodes == 1 else f"the {self.shape.nodes} nodes"
        _say(f"stopping {which} gracefully")
        stopping_at = time.monotonic()
        self.nodes = None
        problems = nodes.stop()
        _say(f"{which} stopped in {time.monotonic() - stopping_at:.1f} s")
        counts = read_counts(engine)
        reconciliation = reconcile(before, scenario.snapshot_balances(server), engine)
        return DemoSummary(
            self.shape,
            counts,
            tally,
            reconciliation,
            fill_to_confirmed_ms(engine),
            trading_s,
            elapsed_s,
            problems_of(counts, tally, reconciliation) + problems,
        )

    def _set_up_chain_and_database(self) -> tuple[LocalnetServer, Engine, Scenario]:
        config = LocalnetConfig(port=0, endpoints=1, slot_ms=self.args.slot_ms)
        self.server = server = LocalnetServer(config).start()
        self.engine = engine = open_engine(sqlite_url(self.workdir / "crank.db"))
        upgrade(engine)
        scenario = build_scenario(
            server,
            engine,
            markets=self.shape.markets,
            makers=self.shape.makers,
            settlement_authority=self.wallet,
            fee_payer=self.wallet,
            base_atoms_per_maker=ATOMS_PER_MAKER,
            quote_atoms_per_maker=ATOMS_PER_MAKER,
            seed=self.shape.seed,
        )
        _say(
            f"crank-node demo: localnet {server.url} (slot {self.args.slot_ms} ms); "
            f"{self.shape.markets} markets "
            f"({', '.join(m.market_id for m in scenario.markets)}), "
            f"{self.shape.makers} makers funded and delegated; seed {self.shape.seed}"
        )
        return server, engine, scenario

    def _start_nodes(self, server: LocalnetServer) -> DemoNodes:
        db_path = self.workdir / "crank.db"
        overrides = {"trace": True} if getattr(self.args, "trace", False) else None
        setup = NodeSetup(
            db_path, server.urls, self.workdir / "wallet.json", self.workdir, overrides=overrides
        )
        addrs = http_addrs(self.args.http_addr, self.shape.nodes, processes=self.shape.nodes > 1)
        nodes: DemoNodes = (
            InProcessNode(setup, addrs[0], self.wallet)
            if self.shape.nodes == 1
            else NodeProcesses(setup, addrs)
        )
        self.nodes = nodes
        self.requests.on_hurry(nodes.hurry)
        try:
            nodes.start(self.requests.stop)
        except OSError as error:
            raise CrankError(f"cannot start the node: {error}") from None
        where = "in this process" if self.shape.nodes == 1 else "processes"
        _say(f"  nodes ({where}): {', '.join(nodes.urls)}  (crank-node status --url URL)")
        _say(f"  order intake: {', '.join(nodes.intake_urls)}")
        _say(
            f"  workdir {self.workdir}: crank.db, wallet.json "
            f"(settlement authority and fee payer {self.wallet.pubkey()}), logs *.jsonl"
        )
        duration = self.args.duration
        until = f"for {duration:g} s" if duration is not None else "until Ctrl-C"
        _say(f"  the makers send {self.args.rate:g} orders/s {until}; Ctrl-C ends sooner")
        return nodes

    def _wait_for_markets_shared(self, engine: Engine, markets: list[str]) -> None:
        """Until every node holds its fair share of the markets (bounded): orders sent
        earlier would wait, and a market handed over between nodes would show as
        warnings about lost leases."""
        ids = [node_id(index) for index in range(1, self.shape.nodes + 1)]
        wanted = {node: fair_share(len(markets), ids, node) for node in ids}
        gives_up_at = time.monotonic() + MARKETS_SHARED_TIMEOUT_S
        while True:
            holders = market_holders(engine)
            held = {node: list(holders.values()).count(node) for node in ids}
            if set(holders) >= set(markets) and held == wanted:
                break
            if time.monotonic() >= gives_up_at or self.requests.stop.wait(0.1):
                break
        shown = ", ".join(f"{m} -> {holders.get(m, 'nobody yet')}" for m in markets)
        _say(f"  markets held: {shown}")

    def _trade(
        self, engine: Engine, scenario: Scenario, urls: tuple[str, ...]
    ) -> tuple[SubmissionTally, float]:
        """The makers send orders; returns what the nodes answered, and for how long."""
        flow = OrderFlow(
            scenario, seed=self.shape.seed, now_s=time.time, cross_probability=CROSS_PROBABILITY
        )
        self.started_at = time.monotonic()
        self.submitter = OrderSubmitter(flow, urls, self.args.rate)
        self.submitter.start()
        self._send_orders(engine, self.submitter)
        self.submitter.stop()
        # From now on a Ctrl-C is a second stop request: it cuts the drain short.
        self.requests.stop.set()
        return self.submitter.tally(), time.monotonic() - self.started_at

    def _send_orders(self, engine: Engine, submitter: OrderSubmitter) -> None:
        """Until the duration is up, a stop request, or the makers run out of funds;
        a progress line every tick."""
        stop, duration = self.requests.stop, self.args.duration
        ends_at = None if duration is None else self.started_at + duration
        next_tick = self.started_at + TICK_S
        while not stop.is_set() and not submitter.finished.is_set():
            now = time.monotonic()
            if ends_at is not None and now >= ends_at:
                break
            if now >= next_tick:
                self._progress(engine, "trading")
                next_tick += TICK_S
                continue
            stop.wait(min(next_tick, ends_at or next_tick) - now)
        if stop.is_set():
            _say("stop requested: the makers stop")
        _say("waiting for the last fills to settle (Ctrl-C to cut the wait short)")

    def _drain(self, engine: Engine) -> None:
        """Wait (at most DRAIN_TIMEOUT_S) until matching has caught up (no crossing
        orders left) and every settlement is confirmed or failed."""
        hurry = self.requests.hurry
        gives_up_at = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            # Crossing orders first: a fill made after this read must come from a
            # crossing pair it saw, so the counts read next cannot miss one.
            crossing = crossing_markets(engine)
            counts = self._progress(engine, "draining")
            if counts.pending == 0 and not crossing:
                return
            if hurry.is_set():
                _say("second stop request: not waiting for the last settlements")
                return
            if time.monotonic() >= gives_up_at:
                _say(f"still unsettled after {DRAIN_TIMEOUT_S:.0f} s: stopping anyway")
                return
            hurry.wait(TICK_S)

    def _progress(self, engine: Engine, phase: str) -> DemoCounts:
        counts = read_counts(engine)
        _say(self.meter.line(counts, time.monotonic() - self.started_at, phase))
        return counts

    def _close(self) -> None:
        """Stop whatever is still running (after an error), last started first."""
        if self.submitter is not None:
            self.submitter.stop()
        if self.nodes is not None:
            for problem in self.nodes.stop():
                _say(f"crank-node demo: {problem}")
            self.nodes = None
        if self.server is not None:
            self.server.stop()
        if self.engine is not None:
            self.engine.dispose()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
