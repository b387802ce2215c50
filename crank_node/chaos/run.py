"""One `crank-node chaos` run, step by step (see :mod:`crank_node.cli.chaos`): set up the chain,
the database and the nodes; trade while the faults happen; heal; drain; stop the
nodes; check the invariants; report. Everything it starts, it stops.

The run's clock starts with the first order: fault times, lease spans and
takeovers are all in seconds from there.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

from solders.keypair import Keypair
from sqlalchemy.engine import Engine, make_url

from crank_node.chaos.audit import (
    audit,
    down_intervals,
    monitor_notes,
    read_fill_markers,
    refuse_used,
)
from crank_node.chaos.checks import InvariantResult
from crank_node.chaos.faults import plan_faults
from crank_node.chaos.forwarder import Forwarder, Route
from crank_node.chaos.lease_checks import NodeDown
from crank_node.chaos.marker_checks import MarkerAccounting, account_for_markers
from crank_node.chaos.monitor import POLL_S, LeaseMonitor, MonitorRecord
from crank_node.chaos.netns import NamespaceHosts, NetLab, netns_unavailable, offset_seconds
from crank_node.chaos.partitions import partition_findings
from crank_node.chaos.report import ChaosReport, ChaosShape
from crank_node.chaos.scheduler import FaultScheduler, InjectedFault
from crank_node.chaos.takeover import expired_while_up, resume_findings, takeovers
from crank_node.chaos.targets import ChaosTargets, NetworkTargets
from crank_node.chaos.timeline import Timeline, build_timeline, settled_times
from crank_node.demo.nodes import http_addrs
from crank_node.demo.orders import OrderSubmitter, SubmissionTally
from crank_node.demo.progress import (
    DemoCounts,
    ProgressMeter,
    crossing_markets,
    market_holders,
    read_counts,
)
from crank_node.demo.summary import write_json
from crank_node.harness.order_flow import OrderFlow
from crank_node.harness.processes import NodeProcesses, NodeSetup
from crank_node.harness.scenario import Scenario, build_scenario
from crank_node.harness.skeleton import StopRequests
from localnet import LocalnetConfig, LocalnetServer
from localnet.audit import existing_accounts, scan_settlements
from storage import StorageError, fair_share, open_engine, sqlite_url, upgrade
from supervision.errors import CrankError

__all__ = ["ChaosRun"]

ATOMS_PER_MAKER = 10**12  # the flow never overdraws; this lasts hours of orders
CROSS_PROBABILITY = 0.5
ENDPOINTS = 3
SHARES_TIMEOUT_S = 30.0
POST_TIMEOUT_S = 5.0  # a frozen node must not hold the makers back for long
MONITOR_SLACK_S = 0.5  # a lease's expiry vs when a poll saw it
TICK_S = 1.0
NODE_PREFIX = "chaos-node"
NETNS_OPERATOR_PORT = 8080  # each node is a host of its own: fixed ports (intake: +1)


class ChaosRun:
    """Runs once: :meth:`run` returns the report, or None if the setup failed."""

    def __init__(
        self,
        args: argparse.Namespace,
        workdir: Path,
        *,
        seed: int,
        membership_ms: int,
        wallet: Keypair,
        requests: StopRequests,
    ) -> None:
        self.args, self.workdir, self.seed, self.wallet = args, workdir, seed, wallet
        self.requests = requests
        self.ttl_s = args.lease_ttl_ms / 1000
        self.db_path: Path | None = None
        if not args.db_url:
            self.db_path = args.db_path or workdir / "crank.db"
        self.db_url: str = args.db_url or sqlite_url(args.db_path or workdir / "crank.db")
        self.shape = ChaosShape(
            nodes=args.nodes,
            markets=args.markets,
            makers=args.makers,
            duration_s=args.duration,
            seed=seed,
            rate_per_s=args.rate,
            slot_ms=args.slot_ms,
            lease_ttl_ms=args.lease_ttl_ms,
            membership_interval_ms=membership_ms,
            database=self.db_url.split(":", 1)[0].split("+", 1)[0],
            workdir=str(workdir),
        )
        self.server: LocalnetServer | None = None
        self.engine: Engine | None = None
        self.nodes: NodeProcesses | None = None
        self.monitor: LeaseMonitor | None = None
        self.scheduler: FaultScheduler | None = None
        self.submitter: OrderSubmitter | None = None
        self.lab: NetLab | None = None
        self.forwarder: Forwarder | None = None
        self.network: NetworkTargets | None = None
        self.clock_offsets: dict[int, str] = dict(getattr(args, "clock_skew", None) or [])
        self.notes: list[str] = []
        self.meter = ProgressMeter()
        self.t0 = time.monotonic()
        self.wall0 = time.time()

    def clock(self) -> float:
        """The run's seconds: from the first order."""
        return time.monotonic() - self.t0

    def run(self) -> ChaosReport | None:
        try:
            return self._run()
        except CrankError as error:
            _say(f"crank-node chaos: error: {error}")
            return None
        finally:
            self._close()

    def _run(self) -> ChaosReport:
        server, engine, scenario = self._set_up()
        before = scenario.snapshot_balances(server)
        nodes = self._start_nodes(server)
        market_ids = [market.market_id for market in scenario.markets]
        self._shares(engine, market_ids, nodes.ids)
        self.t0, self.wall0 = time.monotonic(), time.time()
        self.monitor = monitor = LeaseMonitor(engine, self.clock)
        monitor.start()
        scheduler = self._start_faults(nodes, server)
        tally, trading_s = self._trade(engine, scenario, nodes, scheduler)
        scheduler.stop()
        _say("every fault healed; waiting for the last fills to settle")
        self._drain(engine)
        shares, fair = self._shares(engine, market_ids, nodes.ids)
        self.nodes = None
        self.notes += nodes.stop()
        stopped_at_s = self.clock()
        # Every node has stopped: one TTL on, no lease may be live (invariant 5).
        if self.requests.hurry.wait(self.ttl_s + MONITOR_SLACK_S + 3 * POLL_S):
            self.notes.append("hurried: the leases were not watched for a TTL after the stop")
        self.monitor = None
        record = monitor.stop()
        write_json(self.workdir / "monitor.json", record.to_json())
        elapsed_s = self.clock()
        down = down_intervals(scheduler.injected, nodes.ids, stopped_at_s)
        invariants = self._audit(engine, scenario, before, record, down)
        offsets = {nodes.ids[i - 1]: offset_seconds(o) for i, o in self.clock_offsets.items()}
        partitions = partition_findings(
            scheduler.injected,
            record,
            nodes.ids,
            self.workdir,
            wall_at_zero_s=self.wall0,
            clock_offsets_s=offsets,
            after_heal_s=self.ttl_s,
        )
        return ChaosReport(
            self.shape,
            scheduler.injected,
            invariants,
            read_counts(engine),
            tally,
            trading_s,
            elapsed_s,
            takeovers(scheduler.injected, record, nodes.ids),
            resume_findings(scheduler.injected, nodes.ids, self.workdir, self.wall0),
            shares,
            fair,
            record.polls,
            self.notes + monitor_notes(record),
            expired_while_up(record.leases, down),
            self.wall0,
            partitions,
            self._timeline(scheduler.injected, record, nodes.ids, offsets, elapsed_s),
        )

    def _timeline(
        self,
        injected: list[InjectedFault],
        record: MonitorRecord,
        ids: tuple[str, ...],
        offsets: dict[str, float],
        elapsed_s: float,
    ) -> Timeline:
        """The run's picture: faults, leases held and settlements per node over time."""
        settled = settled_times(
            self.workdir, ids, wall_at_zero_s=self.wall0, clock_offsets_s=offsets
        )
        return build_timeline(
            seed=self.seed,
            duration_s=elapsed_s,
            node_ids=ids,
            injected=injected,
            leases=record.leases,
            settled=settled,
            markets=self.shape.markets,
            database=self.shape.database,
            notes={ids[i - 1]: f"clock {o}" for i, o in self.clock_offsets.items()},
        )

    # -- the steps -----------------------------------------------------------------------

    def _set_up(self) -> tuple[LocalnetServer, Engine, Scenario]:
        config = LocalnetConfig(
            port=0, endpoints=ENDPOINTS, slot_ms=self.args.slot_ms, fault_seed=self.seed
        )
        self.server = server = LocalnetServer(config).start()
        self.engine = engine = open_engine(self.db_url)
        upgrade(engine)
        refuse_used(engine)
        scenario = build_scenario(
            server,
            engine,
            markets=self.shape.markets,
            makers=self.shape.makers,
            settlement_authority=self.wallet,
            fee_payer=self.wallet,
            base_atoms_per_maker=ATOMS_PER_MAKER,
            quote_atoms_per_maker=ATOMS_PER_MAKER,
            seed=self.seed,
        )
        _say(
            f"crank-node chaos: localnet {', '.join(server.urls)} (slot {self.args.slot_ms} "
            f"ms); {self.shape.markets} markets, {self.shape.makers} makers; {self.shape.database}"
            f" database; seed {self.seed}; workdir {self.workdir}"
        )
        return server, engine, scenario

    def _start_nodes(self, server: LocalnetServer) -> NodeProcesses:
        args = self.args
        overrides = {
            "lease_ttl_ms": args.lease_ttl_ms,
            "membership_interval_ms": self.shape.membership_interval_ms,
            "settlement_claim_ttl_ms": args.lease_ttl_ms,
            "shutdown_timeout_ms": 20_000,
            # Scaled to the run's short TTL like the rest: a node cut from every endpoint
            # hands its work over after two TTLs, and a paused endpoint is probed again
            # after two TTLs (the defaults, 30 s each, are longer than most faults here).
            "chain_handover_ms": max(1000, 2 * args.lease_ttl_ms),
            "pause_duration_ms": 2 * args.lease_ttl_ms,
        }
        db_url, rpc_urls = args.db_url, server.urls
        hosts: NamespaceHosts | None = None
        if getattr(args, "netns", False):
            hosts, db_url, rpc_urls = self._open_network(server, overrides)
            assert self.lab is not None
            addrs = [
                f"{self.lab.plan.address(node)}:{NETNS_OPERATOR_PORT}"
                for node in range(1, self.shape.nodes + 1)
            ]
        else:
            addrs = http_addrs("127.0.0.1:0", self.shape.nodes, processes=True)
        setup = NodeSetup(
            self.db_path,
            rpc_urls,
            self.workdir / "wallet.json",
            self.workdir,
            db_url=db_url,
            overrides=overrides,
        )
        self.nodes = nodes = NodeProcesses(
            setup, addrs, prefix=NODE_PREFIX, stderr_to_files=True, hosts=hosts
        )
        try:
            nodes.start(self.requests.stop)
        except OSError as error:
            raise CrankError(f"cannot start the nodes: {error}") from None
        _say(f"  nodes: {', '.join(nodes.urls)}")
        return nodes

    def _open_network(
        self, server: LocalnetServer, overrides: dict[str, object]
    ) -> tuple[NamespaceHosts, str, tuple[str, ...]]:
        """Namespaces, the relay of PostgreSQL's and localnet's ports to the gateway, and
        what the nodes are given instead: the URLs through the gateway, a token file for
        their operator listeners (off loopback now)."""
        url = make_url(self.db_url)
        if url.get_backend_name() != "postgresql":
            raise CrankError("--netns needs --db-url on PostgreSQL (nodes on several hosts)")
        # Without iptables every partition would be "not applied" and the run would say OK.
        unavailable = netns_unavailable()
        if unavailable is not None:
            raise CrankError(f"--netns: {unavailable}")
        self.lab = lab = NetLab.create(self.shape.nodes).open()
        gateway = lab.plan.gateway
        db_port = int(url.port or 5432)
        routes = [Route(gateway, db_port, url.host or "127.0.0.1", db_port)]
        endpoint_ports: list[tuple[int, ...]] = []
        rpc_urls = []
        for rpc_url, pubsub_url in zip(server.urls, server.pubsub_urls, strict=True):
            ports = tuple(
                int(u.rsplit(":", 1)[1].split("/")[0]) for u in (rpc_url, pubsub_url) if u
            )
            endpoint_ports.append(ports)
            routes += [Route(gateway, port, "127.0.0.1", port) for port in ports]
            rpc_urls.append(rpc_url.replace("127.0.0.1", gateway))
        self.forwarder = forwarder = Forwarder(routes, seed=self.seed).start()
        self.network = NetworkTargets(lab, forwarder, db_port, tuple(endpoint_ports))
        token = secrets.token_urlsafe(32)
        token_file = self.workdir / "operator.token"
        token_file.write_text(token)
        os.chmod(token_file, 0o600)
        overrides.update(operator_allow_remote=True, operator_token_file=str(token_file))
        db_url = url.set(host=gateway).render_as_string(hide_password=False)
        _say(f"  namespaces: gateway {gateway}, bridge {lab.plan.bridge}")
        hosts = NamespaceHosts(lab, token, self.clock_offsets)
        return hosts, db_url, tuple(rpc_urls)

    def _start_faults(self, nodes: NodeProcesses, server: LocalnetServer) -> FaultScheduler:
        pinned = tuple(sorted(getattr(self.args, "fault", None) or (), key=lambda f: f.start_s))
        plan = pinned or plan_faults(
            self.seed,
            duration_s=self.shape.duration_s,
            nodes=self.shape.nodes,
            endpoints=ENDPOINTS,
            takeover_s=self.shape.takeover_bound_s,
            slot_ms=self.shape.slot_ms,
            network=self.network is not None,
            ttl_s=self.ttl_s,
        )
        targets = ChaosTargets(nodes, server, self.db_url, self.clock, self.network)
        self.scheduler = scheduler = FaultScheduler(plan, targets, self.clock)
        scheduler.on_applied(
            lambda fault: _say(
                f"  +{self.clock():.1f}s fault: {fault.kind.value} {fault.target} "
                f"{fault.planned.parameters()}".rstrip()
            )
        )
        scheduler.start()
        _say(f"  {len(plan)} faults planned over {self.shape.duration_s:g} s")
        return scheduler

    def _trade(
        self, engine: Engine, scenario: Scenario, nodes: NodeProcesses, faults: FaultScheduler
    ) -> tuple[SubmissionTally, float]:
        flow = OrderFlow(
            scenario, seed=self.seed, now_s=time.time, cross_probability=CROSS_PROBABILITY
        )
        self.submitter = submitter = OrderSubmitter(
            flow,
            nodes.intake_urls,
            self.args.rate,
            post_timeout_s=POST_TIMEOUT_S,
            available=lambda index: faults.node_up(index + 1),
        )
        submitter.start()
        next_tick_s = TICK_S
        while not self.requests.stop.is_set() and not submitter.finished.is_set():
            now_s = self.clock()
            if now_s >= self.shape.duration_s:
                break
            if now_s >= next_tick_s:
                try:
                    self._progress(engine, "chaos", faults.injected)
                except StorageError as error:  # under a database fault, say so and go on
                    _say(f"  progress unavailable: {error}")
                next_tick_s += TICK_S
            self.requests.stop.wait(max(0.0, min(next_tick_s, self.shape.duration_s) - now_s))
        submitter.stop()
        if self.requests.stop.is_set():
            self.notes.append(f"stopped early, at +{self.clock():.1f}s, by a stop request")
        self.requests.stop.set()  # from now on a Ctrl-C hurries
        return submitter.tally(), self.clock()

    def _drain(self, engine: Engine) -> None:
        """Until nothing is left to match or settle (bounded by --drain-timeout)."""
        gives_up_at_s = self.clock() + self.args.drain_timeout
        while True:
            try:
                crossing = crossing_markets(engine)  # first: see crank_node.demo.run's _drain
                counts = self._progress(engine, "draining", ())
            except StorageError as error:  # the database is busy: ask again next tick
                _say(f"  progress unavailable: {error}")
                self.requests.hurry.wait(TICK_S)
                continue
            if counts.pending == 0 and not crossing:
                return
            if self.requests.hurry.is_set() or self.clock() >= gives_up_at_s:
                self.notes.append(
                    f"the drain was cut short: {counts.pending} settlements pending, "
                    f"{len(crossing)} markets with crossing orders"
                )
                return
            self.requests.hurry.wait(TICK_S)

    def _shares(
        self, engine: Engine, markets: list[str], ids: tuple[str, ...]
    ) -> tuple[dict[str, int], bool]:
        """Wait (bounded) until every node holds its fair share; the shares then."""
        wanted = {node: fair_share(len(markets), ids, node) for node in ids}
        gives_up_at = time.monotonic() + SHARES_TIMEOUT_S
        holders: dict[str, str] = {}
        while True:
            try:
                holders = market_holders(engine)
            except StorageError as error:
                _say(f"  market holders unavailable: {error}")
            held = {node: list(holders.values()).count(node) for node in ids}
            fair = set(holders) >= set(markets) and held == wanted
            if fair or time.monotonic() >= gives_up_at or self.requests.hurry.wait(0.1):
                _say(f"  markets held: {', '.join(f'{m} -> {holders.get(m)}' for m in markets)}")
                return held, fair

    def _audit(
        self,
        engine: Engine,
        scenario: Scenario,
        before: dict[str, int],
        record: MonitorRecord,
        down: list[NodeDown],
    ) -> list[InvariantResult]:
        assert self.server is not None
        _say("checking the invariants against the chain and the database")
        after = scenario.snapshot_balances(self.server)
        chain = scan_settlements(self.server.urls[0], self.wallet.pubkey())
        return audit(
            engine,
            market_ids=[market.market_id for market in scenario.markets],
            balances=(before, after),
            chain=chain,
            record=record,
            down=down,
            ttl_s=self.ttl_s,
            slack_s=MONITOR_SLACK_S,
            markers=self._markers(engine),
        )

    def _markers(self, engine: Engine) -> MarkerAccounting:
        """Every fill against its marker, read from current chain state (every fault is
        healed by now, and endpoint 0 reads at confirmed)."""
        assert self.server is not None
        fills = read_fill_markers(engine)
        addresses = {address for fill in fills for address in fill.addresses}
        return account_for_markers(fills, existing_accounts(self.server.urls[0], addresses))

    def _progress(
        self, engine: Engine, phase: str, injected: list[InjectedFault] | tuple[()]
    ) -> DemoCounts:
        counts = read_counts(engine)
        active = [
            f"{fault.kind.value} {fault.target}"
            for fault in injected
            if fault.applied_at_s is not None and fault.healed_at_s is None
        ]
        line = self.meter.line(counts, self.clock(), phase)
        _say(line + (f"  faults: {', '.join(active)}" if active else ""))
        return counts

    def _close(self) -> None:
        """Stop whatever is still running (after an error), last started first."""
        if self.submitter is not None:
            self.submitter.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.nodes is not None:
            for problem in self.nodes.stop():
                _say(f"crank-node chaos: {problem}")
        if self.monitor is not None:
            self.monitor.stop()
        if self.forwarder is not None:
            self.forwarder.stop()
        if self.lab is not None:
            self.lab.close()
        if self.server is not None:
            self.server.stop()
        if self.engine is not None:
            self.engine.dispose()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
