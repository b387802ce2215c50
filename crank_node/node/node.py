"""The node: its supervision tree, built from the settings, and how it stops.

    node (rest_for_one)
    |-- locks         LockActor: leases, membership, fair share of the markets
    |-- rpc           RpcRouter
    |-- blockhash     BlockhashActor
    `-- pipeline      one_for_one
        |-- settlement  SettlementActor: pending settlements -> one landed transaction each
        |-- match       MatchActor: the books of the held markets, fills under their leases
        |-- monitor     OrderMonitor: new, cancelled, expired and (un)funded orders
        `-- reclaim     MarkerReclaimActor: settlement markers' rent back, once safe

The LockActor tells MatchActor and OrderMonitor which markets this node holds;
OrderMonitor tells MatchActor about orders; MatchActor tells SettlementActor
about fills, and SettlementActor tells MatchActor when it is full.

The stop phases follow docs/ARCHITECTURE.md (see :meth:`Node.shutdown_phases`): stop
taking orders, finish the matching round, drain in-flight settlements, stop
blockhash and RPC, release every lease, close the database.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from loguru import logger
from solders.keypair import Keypair
from sqlalchemy import select
from sqlalchemy.engine import Engine

from actors.blockhash import BlockhashActor, BlockhashSettings, GetBlockhashState
from actors.lease_watchdog import LeaseWatchdog
from actors.lock_actor import GetClockState, GetHeldLeases, LockActor, MessageSink
from actors.order_monitor import GetMonitorState
from actors.rpc import GetRouterState, RpcClient, RpcRouter, RpcSuccess
from actors.rpc.reach import ChainReach
from actors.settlement import GetSettlementState
from crank_node.node.gc_tuning import gc_status
from crank_node.node.health_rules import (
    SettlementProgress,
    judge_polls,
    judge_settlement_progress,
    judge_work,
)
from crank_node.node.intake import CancelListener, OrderIntake, OrderListener
from crank_node.node.metrics import NodeMetrics
from crank_node.node.pipeline import PipelineParts, pipeline_specs
from crank_node.node.settings import CrankSettings, shown_value
from storage import (
    DatabaseBusy,
    DatabaseUnavailable,
    LeaseStore,
    check_integrity,
    check_schema,
    count_quarantined,
    count_unauthorized_settlements,
    open_engine,
    read_transaction,
    refused_markets,
)
from storage.fair_share import MARKET_KEY_PREFIX, market_id
from storage.markers import marker_totals
from storage.models import Market
from storage.work_view import read_work_view
from supervision import (
    REAL_CLOCK,
    ChildSpec,
    RemoveChild,
    RootRunner,
    StartTimedOut,
    Strategy,
    Supervisor,
    describe_tree,
)
from supervision.errors import CrankError
from supervision.shutdown import ShutdownPhase, thread_stacks

__all__ = ["Node", "judge_fee_payers"]

ASK_TIMEOUT_S = 2.0
# A start refused as DatabaseBusy, or (on a database server) DatabaseUnavailable, is
# tried again: after 0.5 s, doubling to 8 s, for up to two minutes (each try itself
# waits out the busy or connect timeout first).
START_RETRY_FIRST_S = 0.5
START_RETRY_MAX_S = 8.0
START_RETRY_BUDGET_S = 120.0
Probe = Callable[[], tuple[str, dict[str, Any]]]
E = TypeVar("E", bound=BaseException)
T = TypeVar("T")


@dataclass
class Node:
    """One crank node process: build with settings, :meth:`start`, then stop by phases."""

    settings: CrankSettings
    engine: Engine | None = None
    runner: RootRunner | None = None
    started_at: float = field(default_factory=time.time)
    started_monotonic_s: float = field(default_factory=time.monotonic)
    progress: SettlementProgress = field(default_factory=SettlementProgress)  # for /health
    drain_report: dict[str, int] = field(default_factory=dict)
    specs: dict[str, ChildSpec] = field(default_factory=dict)
    metrics: NodeMetrics = field(default_factory=NodeMetrics)  # a registry per node
    signers: tuple[Keypair, ...] = ()  # fee payers and settlement authorities it signs as
    intake: OrderIntake | None = None  # set once the tree runs; closed first on stop
    pipeline: PipelineParts | None = None
    # Each lease's local deadline, kept off the LockActor's thread: read by /health even
    # while the LockActor hangs in the database; shared by its instances across restarts.
    lease_watchdog: LeaseWatchdog = field(default_factory=lambda: LeaseWatchdog(REAL_CLOCK))
    # Also told of each finished settlement (tests, the demo's progress).
    settlement_listeners: tuple[Callable[[Any], None], ...] = ()
    # Since when no RPC endpoint answers (the router's events); made with the tree.
    chain_reach: ChainReach = field(default_factory=lambda: ChainReach(()))

    def start(self, cancel: threading.Event | None = None) -> None:
        """Open and check the database, then start the tree. Raises CrankError
        (schema outdated, database unavailable...) naming what to fix.

        A start that failed because the database was busy (another process holds its
        write lock: a migration, a backup, a chaos fault), or because a database server
        could not be reached (a partition, the server restarting), is tried again after
        a backoff (:data:`START_RETRY_FIRST_S` doubling to :data:`START_RETRY_MAX_S`,
        logged as ``node.start_retry``) for up to :data:`START_RETRY_BUDGET_S`, or
        until ``cancel`` is set; then the last error is raised."""
        # Only `crank-node db upgrade` creates a database (and its directory): a typo
        # in the path must not start a node on a new, empty file somewhere else.
        self.engine = open_engine(
            self.settings.db_url, create_directory=False, **self.settings.engine_options()
        )
        engine, stop = self.engine, cancel or threading.Event()
        self._retrying(lambda: self._check_database(engine), stop)
        self.runner = self._retrying(lambda: self._start_tree(engine), stop)
        self.intake = OrderIntake(
            self.engine,
            rpc=RpcClient(self.specs["rpc"].handle),
            listeners=self._order_listeners(),
            cancel_listeners=self._cancel_listeners(),
        )
        self.metrics.observe(self.status)
        logger.bind(action="node.started", node_id=self.settings.instance_id).info(
            f"node {self.settings.instance_id} started"
        )

    def _order_listeners(self) -> tuple[OrderListener, ...]:
        """What intake tells of each order it stores: the metrics, and OrderMonitor (a
        wake-up, unless intake_wakeup_ms is 0)."""
        listeners: list[OrderListener] = [self.metrics.pipeline.order_accepted]
        if self.settings.intake_wakeup_ms and self.pipeline is not None:
            listeners.append(self.pipeline.order_stored)
        return tuple(listeners)

    def _cancel_listeners(self) -> tuple[CancelListener, ...]:
        """What intake tells of each cancel it stores: OrderMonitor (a wake-up, unless
        intake_wakeup_ms is 0), which takes the orders out of the book at once."""
        if self.settings.intake_wakeup_ms and self.pipeline is not None:
            return (self.pipeline.orders_changed,)
        return ()

    def _check_database(self, engine: Engine) -> None:
        try:
            check_integrity(engine)  # a damaged SQLite file is refused, not run on
            check_schema(engine)
        except DatabaseUnavailable as error:
            # The driver's words ("unable to open database file") do not say which.
            where = shown_value("db_url", self.settings.db_url)
            raise DatabaseUnavailable(f"{error} (database: {where})") from error

    def _retrying(self, step: Callable[[], T], cancel: threading.Event) -> T:
        """``step()``, tried again while it fails for a reason that passes (the module's
        START_RETRY_* backoff, each retry logged as ``node.start_retry``): the database
        busy, on any engine; a database server that cannot be reached (a partition, a
        restart of the server), but not an SQLite file that cannot be opened (a wrong
        path does not heal). Past the budget, or once ``cancel`` is set, the last error
        is raised."""
        started_s = time.monotonic()
        delay_s = START_RETRY_FIRST_S
        for attempt in itertools.count(1):
            try:
                return step()
            except CrankError as error:
                passing = self._passing_cause(error)
                if passing is None or time.monotonic() + delay_s - started_s > START_RETRY_BUDGET_S:
                    raise
                logger.bind(action="node.start_retry", attempt=attempt, retry_in_s=delay_s).warning(
                    f"could not start ({passing}); trying again in {delay_s:g}s"
                )
                if cancel.wait(delay_s):
                    raise
                delay_s = min(delay_s * 2, START_RETRY_MAX_S)
        raise AssertionError("unreachable")  # itertools.count never ends

    def _passing_cause(self, error: BaseException) -> CrankError | None:
        busy = _cause(error, DatabaseBusy)
        if busy is not None:
            return busy
        if self.engine is not None and self.engine.dialect.name != "sqlite":
            # A server cut off: refused or timed out, or a start (the LockActor's, whose
            # on_start only talks to the database) still waiting on it at its deadline.
            return _cause(error, DatabaseUnavailable) or _cause(error, StartTimedOut)
        return None

    def _start_tree(self, engine: Engine) -> RootRunner:
        """Build the tree's specs (fresh ones: a failed start closed the last ones' handles)
        and start it."""
        router_config = self.settings.rpc_router_config()
        lock_settings = self.settings.lock_settings()
        self.chain_reach = ChainReach(endpoint.name for endpoint in router_config.endpoints)
        self.specs = {
            "locks": ChildSpec(
                id="locks",
                factory=lambda: self._lock_actor(engine, lock_settings),
                shutdown_timeout_s=10.0,
            ),
            "rpc": ChildSpec(
                id="rpc",
                factory=lambda: RpcRouter(router_config, on_event=self.chain_reach.observe),
            ),
        }
        rpc_handle = self.specs["rpc"].handle
        self.specs["blockhash"] = ChildSpec(
            id="blockhash", factory=lambda: BlockhashActor(rpc_handle, BlockhashSettings())
        )
        self.pipeline = pipeline_specs(
            self.settings,
            engine,
            self.signers,
            locks=self.specs["locks"].handle,
            rpc=rpc_handle,
            blockhash=self.specs["blockhash"].handle,
            listeners=(self.metrics.pipeline.settlement_finished, *self.settlement_listeners),
            chain_cut_for_s=self.chain_reach.cut_for_s,
        )
        children = list(self.pipeline.specs)
        self.specs["pipeline"] = ChildSpec.supervisor(
            "pipeline", lambda: Supervisor(children, name="pipeline"), shutdown_timeout_s=30.0
        )
        order = [self.specs[key] for key in ("locks", "rpc", "blockhash", "pipeline")]
        runner = RootRunner(lambda: Supervisor(order, name="node", strategy=Strategy.REST_FOR_ONE))
        runner.start()
        return runner

    def _lock_actor(self, engine: Engine, lock_settings: Any) -> LockActor:
        assert self.pipeline is not None  # built before the tree starts
        listeners: tuple[MessageSink, ...] = (
            self.metrics.lease_changes,
            *self.pipeline.market_listeners,
        )
        return LockActor(
            engine,
            lock_settings,
            market_listeners=listeners,
            watchdog=self.lease_watchdog,
            chain_cut_for_s=self.chain_reach.cut_for_s,
        )

    # -- stopping --------------------------------------------------------------------

    def shutdown_phases(self) -> list[ShutdownPhase]:
        drain_s = self.settings.shutdown_timeout_s / 2
        return [
            ShutdownPhase("stop-intake", lambda _h: self._close_intake(), 1.0),
            ShutdownPhase("finish-matching", lambda _h: self._finish_matching(), 10.0),
            ShutdownPhase("drain-settlements", self._drain, drain_s),
            ShutdownPhase("stop-blockhash", lambda _h: self._remove("blockhash"), 5.0),
            ShutdownPhase("stop-rpc", lambda _h: self._remove("rpc"), 5.0),
            ShutdownPhase("release-leases", lambda _h: self._release_leases(), 10.0, True),
            ShutdownPhase("close-database", lambda _h: self._close(), 5.0, True),
        ]

    def _close_intake(self) -> None:
        if self.intake is not None:
            self.intake.close()

    def _finish_matching(self) -> None:
        """Stop OrderMonitor, let MatchActor finish what it was told, then stop it."""
        if self.pipeline is not None and self._running():
            self.pipeline.finish_matching(self.specs["pipeline"].handle)

    def _drain(self, hurry: threading.Event) -> None:
        """Let SettlementActor finish what it holds (cut short by ``hurry``), then stop
        the pipeline: what is left is released for recovery."""
        if self.pipeline is not None and self._running():
            self.drain_report = self.pipeline.drain(hurry)
        self._remove("pipeline")

    def _running(self) -> bool:
        runner = self.runner
        return runner is not None and runner.handle is not None and not runner.wait(0)

    def _remove(self, child_id: str) -> None:
        runner = self.runner
        if runner is not None and runner.handle is not None and not runner.wait(0):
            runner.handle.ask(RemoveChild(child_id)).get(timeout=60)

    def _release_leases(self) -> int:
        """Stop the LockActor (it releases on stop) and the tree, then make sure no
        lease names this node, whatever state the actors were in."""
        self._remove("locks")
        if self.runner is not None:
            self.runner.stop(10)
        if self.engine is None:
            return 0
        left_over = LeaseStore(self.engine, self.settings.instance_id).release_all()
        logger.bind(action="node.leases_released", left_over=left_over).info(
            f"no lease names {self.settings.instance_id} any more"
        )
        return left_over

    def _close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    def emergency_stop(self) -> None:
        """The tree gave up (or did not start): release leases, close the database.
        A start that failed before the tree ran held no lease: nothing to release,
        and nothing to alarm anyone about beyond the error that stopped it."""
        if self.runner is None:
            self._close()
            return
        logger.bind(action="node.emergency_stop").critical("emergency stop: releasing leases")
        for step in (self._release_leases, self._close):
            try:
                step()
            except Exception as error:  # noqa: BLE001  (each step is tried whatever happened)
                logger.bind(action="node.emergency_step_failed").error(f"{step.__name__}: {error}")

    # -- looking in ----------------------------------------------------------------------

    def dump(self) -> None:
        """SIGUSR1: the actor tree and every thread's stack, to the log."""
        runner = self.runner
        tree = describe_tree(runner.handle) if runner and runner.handle else {}
        logger.bind(action="node.dump").warning(f"actor tree: {tree}\n{thread_stacks()}")

    def health(self) -> tuple[str, dict[str, Any]]:
        """(healthy | degraded | unhealthy, per component)."""
        probes: dict[str, Probe] = {
            "database": self._database,
            "rpc": self._rpc,
            "blockhash": self._blockhash,
            "actors": self._actors,
            "leases": self._leases,
            "work": self._work,
            "settlement": self._settlement_progress,
            "polls": self._polls,
            "clock": self._clock,
            "authorization": self._authorization,
            "fee_payer": self._fee_payer,
        }
        components = {name: _check(probe) for name, probe in probes.items()}
        # The node cannot do its job without its database, the chain, its writes and
        # markets, a clock its peers agree with, or the SOL to pay for settlements;
        # anything else leaves it degraded.
        vital = ("database", "rpc", "work", "clock", "fee_payer", "polls", "leases")
        if any(components[name]["status"] == "unhealthy" for name in vital):
            return "unhealthy", components
        statuses = {component["status"] for component in components.values()}
        return ("degraded" if statuses - {"healthy"} else "healthy"), components

    def _database(self) -> tuple[str, dict[str, Any]]:
        assert self.engine is not None
        started = time.perf_counter()
        with read_transaction(self.engine, "node.health") as connection:
            connection.exec_driver_sql("SELECT 1")
        detail: dict[str, Any] = {"latency_ms": round((time.perf_counter() - started) * 1e3, 2)}
        # Rows quarantined as untrusted: everything else works, but someone must look.
        quarantined = self._quarantine()
        detail["quarantined"] = quarantined["total"]
        return ("degraded" if quarantined["total"] else "healthy"), detail

    def _quarantine(self) -> dict[str, Any]:
        assert self.engine is not None
        by_kind = count_quarantined(self.engine)
        return {"total": sum(by_kind.values()), "by_kind": by_kind}

    def _ask(self, child_id: str, message: Any) -> Any:
        return self.specs[child_id].handle.ask(message).get(timeout=ASK_TIMEOUT_S)

    def _rpc(self) -> tuple[str, dict[str, Any]]:
        state = self._ask("rpc", GetRouterState())
        usable = [e.name for e in state.endpoints if e.breaker != "open"]
        detail: dict[str, Any] = {"endpoints": len(state.endpoints), "usable": len(usable)}
        cut_s = self.chain_reach.cut_for_s()
        if cut_s:
            handover_s = self.settings.chain_handover_ms / 1000
            detail["cut_for_s"] = round(cut_s, 3)
            detail["reason"] = f"no RPC endpoint has answered for {cut_s:.1f}s: " + (
                "its markets and settlements are handed to other nodes"
                if cut_s >= handover_s
                else f"handing its work to other nodes after {handover_s:g}s"
            )
        if not usable:
            return "unhealthy", detail
        return ("healthy" if len(usable) == len(state.endpoints) else "degraded"), detail

    def _blockhash(self) -> tuple[str, dict[str, Any]]:
        state = self._ask("blockhash", GetBlockhashState())
        fresh = state.age_s is not None and state.age_s <= BlockhashSettings().max_age_s
        return ("healthy" if fresh else "degraded"), {"age_s": state.age_s}

    def _actors(self) -> tuple[str, dict[str, Any]]:
        assert self.runner is not None and self.runner.handle is not None
        tree = describe_tree(self.runner.handle, ASK_TIMEOUT_S)
        children = tree.get("children", [])
        states = [child["state"] for child in children]
        restarts = sum(child["restart_count"] for child in children)
        healthy = bool(states) and all(state == "running" for state in states)
        return ("healthy" if healthy else "degraded"), {"children": states, "restarts": restarts}

    def _clock(self) -> tuple[str, dict[str, Any]]:
        """Unhealthy while this node's clock disagrees with its peers': it takes no work."""
        state = self._ask("locks", GetClockState())
        detail = {"reason": state.reason, "skews_s": dict(state.skews_s)}
        return ("healthy" if state.agree else "unhealthy"), detail

    def _authorization(self) -> tuple[str, dict[str, Any]]:
        """Degraded while any settlement was refused as unauthorized (market.authorization),
        or any active market's definition is not signed by its settlement authority:
        someone wrote rows to the database that the makers (or the node) did not sign."""
        assert self.engine is not None
        refused = count_unauthorized_settlements(self.engine)
        # Markets whose definition its settlement authority did not sign (or that was
        # edited since): never matched or settled until an operator signs them.
        markets = refused_markets(self.engine)
        detail: dict[str, Any] = {"refused": refused, "refused_markets": sorted(markets)}
        reasons = [f"{refused} settlements refused as unauthorized"] if refused else []
        reasons.extend(markets.values())
        if not reasons:
            return "healthy", detail
        detail["reason"] = "; ".join(reasons)
        return "degraded", detail

    def _fee_payer(self) -> tuple[str, dict[str, Any]]:
        """Each fee payer's SOL (of the markets this node signs for): unhealthy below what
        the next ``fee_payer_min_settlements`` settlements can cost, degraded below
        ``fee_payer_floor_lamports``."""
        return judge_fee_payers(
            self._fee_payer_balances(),
            floor_lamports=self.settings.fee_payer_floor_lamports,
            min_lamports=self.settings.fee_payer_min_lamports,
        )

    def _fee_payer_balances(self) -> dict[str, int | None]:
        """Lamports of each fee payer this node signs as (None: the chain did not say)."""
        assert self.engine is not None
        mine = {str(keypair.pubkey()) for keypair in self.signers}
        # The column alone: a legacy market row (no fee payer) must not fail the probe.
        markets = Market.__table__
        with read_transaction(self.engine, "node.fee_payers") as connection:
            stored = connection.execute(
                select(markets.c.fee_payer).where(markets.c.status.in_(("active", "paused")))
            ).scalars()
            payers = sorted({str(payer) for payer in stored if payer} & mine)
        client = RpcClient(self.specs["rpc"].handle)
        futures = {
            payer: client.request(
                "getBalance", [payer, {"commitment": "confirmed"}], deadline_s=ASK_TIMEOUT_S
            )
            for payer in payers
        }
        balances: dict[str, int | None] = {}
        for payer, future in futures.items():
            outcome = future.get(timeout=ASK_TIMEOUT_S + 1)
            value = (
                outcome.result.get("value")
                if isinstance(outcome, RpcSuccess) and isinstance(outcome.result, dict)
                else None
            )
            balances[payer] = value if type(value) is int else None
        return balances

    def _leases(self) -> tuple[str, dict[str, Any]]:
        """Unhealthy while a lease is past its local deadline without a confirmed renewal
        (its work was stopped; the LockActor may hang in the database). From the
        watchdog, not by asking the LockActor, which may not answer then."""
        watchdog = self.lease_watchdog
        detail: dict[str, Any] = {"held": watchdog.watched()}
        overdue = watchdog.overdue()
        if not overdue:
            return "healthy", detail
        late_s = max(watchdog.clock.monotonic() - lease.deadline_s for lease in overdue)
        detail["overdue"] = sorted(lease.key for lease in overdue)
        detail["reason"] = (
            f"{len(overdue)} leases passed their deadline {late_s:.1f}s ago without a confirmed "
            "renewal (database unreachable or hung?): their work is stopped"
        )
        return "unhealthy", detail

    def _work(self) -> tuple[str, dict[str, Any]]:
        """Writes and market coverage, by the database's clock (crank_node.node.health_rules)."""
        assert self.engine is not None
        view = read_work_view(self.engine, self.settings.instance_id)
        held = sum(
            lease.key.startswith(MARKET_KEY_PREFIX) for lease in self._ask("locks", GetHeldLeases())
        )
        lock = self.settings.lock_settings()
        return judge_work(
            uptime_s=time.monotonic() - self.started_monotonic_s,
            lease_ttl_s=lock.lease_ttl_s,
            membership_interval_s=lock.membership_interval_s,
            heartbeat_age_s=view.heartbeat_age_s,
            held_markets=held,
            active_markets=view.active_markets,
            unheld_markets=view.unheld_markets,
        )

    def _polls(self) -> tuple[str, dict[str, Any]]:
        """Order polls that keep failing: the node cannot see new orders or cancels."""
        assert self.pipeline is not None
        state = self.pipeline.monitor.handle.ask(GetMonitorState()).get(timeout=ASK_TIMEOUT_S)
        return judge_polls(state.failed_polls_in_a_row)

    def _settlement_progress(self) -> tuple[str, dict[str, Any]]:
        assert self.pipeline is not None
        state = self.pipeline.settlement.handle.ask(GetSettlementState()).get(timeout=ASK_TIMEOUT_S)
        return judge_settlement_progress(
            self.progress,
            now_s=time.monotonic(),
            in_flight=state.in_flight,
            finished=state.confirmed + state.failed,
            claim_ttl_s=self.settings.settlement_claim_ttl_ms / 1000,
        )

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` serves and ``/metrics`` reads at each scrape. A part
        whose actor does not answer holds ``{"error": ...}`` instead of failing the rest."""
        runner = self.runner
        tree = describe_tree(runner.handle, ASK_TIMEOUT_S) if runner and runner.handle else None
        return {
            "node_id": self.settings.instance_id,
            "started_at": self.started_at,
            "uptime_s": round(time.time() - self.started_at, 3),
            "tree": tree,
            # endpoints (breaker, latency, counts), backpressure, queued, highest slot
            "rpc": _part(lambda: self._ask("rpc", GetRouterState()).to_json()),
            "leases": _part(self._lease_status),
            "blockhash": _part(lambda: asdict(self._ask("blockhash", GetBlockhashState()))),
            "pipeline": (pipeline := _part(self._pipeline_status)),
            "settlements_in_flight": pipeline.get("settlement", {}).get("in_flight"),
            # settlement markers of every market in the database (not only this node's)
            "markers": _part(self._marker_totals),
            "quarantine": _part(self._quarantine),
            "fee_payers": _part(lambda: {"lamports": self._fee_payer_balances()}),
            "runtime": {"gc": gc_status()},
        }

    def _marker_totals(self) -> dict[str, Any]:
        if self.engine is None:
            return {"error": "not started"}
        return asdict(marker_totals(self.engine))

    def _pipeline_status(self) -> dict[str, Any]:
        if self.pipeline is None:
            return {"error": "not started"}
        return self.pipeline.status()

    def _lease_status(self) -> dict[str, Any]:
        held = [
            {
                "key": lease.key,
                "market": market_id(lease.key) if lease.key.startswith(MARKET_KEY_PREFIX) else None,
                "fencing_token": lease.fencing_token,
                "expires_at": lease.expires_at.isoformat(),
            }
            for lease in self._ask("locks", GetHeldLeases())
        ]
        return {"held": held, **self.metrics.lease_changes.counts()}


def judge_fee_payers(
    balances: dict[str, int | None], *, floor_lamports: int, min_lamports: int
) -> tuple[str, dict[str, Any]]:
    """unhealthy when a fee payer holds less than ``min_lamports`` (it cannot pay the
    next settlements), degraded below ``floor_lamports`` or when a balance is unknown."""
    detail: dict[str, Any] = {
        "lamports": balances,
        "floor_lamports": floor_lamports,
        "min_lamports": min_lamports,
    }
    short = sorted(
        p for p, lamports in balances.items() if lamports is not None and lamports < min_lamports
    )
    if short:
        detail["reason"] = f"fee payer {', '.join(short)} cannot pay the next settlements"
        return "unhealthy", detail
    low = sorted(
        p for p, lamports in balances.items() if lamports is None or lamports < floor_lamports
    )
    if low:
        detail["reason"] = f"fee payer {', '.join(low)} below the floor (or unknown): fund it"
        return "degraded", detail
    return "healthy", detail


def _cause(error: BaseException, kind: type[E]) -> E | None:
    """The first exception of ``kind`` in ``error``'s chain of causes (a child's start
    failure wraps the actor's own error in the supervisors' errors), or None."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _check(probe: Probe) -> dict[str, Any]:
    try:
        status, detail = probe()
    except Exception as error:  # noqa: BLE001  (a failing probe is a finding, not a crash)
        return {"status": "unhealthy", "error": repr(error)}
    return {"status": status, **detail}


def _part(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return read()
    except Exception as error:  # noqa: BLE001  (an actor that does not answer is reported)
        return {"error": repr(error)}
