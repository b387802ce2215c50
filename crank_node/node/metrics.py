"""The node's Prometheus metrics, served at ``GET /metrics``.

Two kinds:

* read at scrape time from :meth:`crank_node.node.node.Node.status` by :class:`StatusCollector`
  (RPC endpoints, breakers and backpressure, the actor tree, leases, blockhash
  age), so /metrics never disagrees with /status and nothing is kept twice;
* fed by the code that does the work: market leases gained and lost (counted by
  :class:`LeaseChangeCounter`, a LockActor market listener), and the order,
  fill and settlement metrics of :class:`PipelineMetrics` (orders from the
  intake, fills and settlements from SettlementActor's finished settlements).

Each node has a :class:`~prometheus_client.CollectorRegistry` of its own (not
the process-wide default), so several nodes in one process, or in one test
run, never collide.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.lock_actor import MarketsChanged
from storage.models import QUARANTINE_KINDS
from supervision import SendResult

__all__ = [
    "BREAKER_STATES",
    "LeaseChangeCounter",
    "NodeMetrics",
    "PipelineMetrics",
    "StatusCollector",
    "flatten_tree",
]

BREAKER_STATES = ("closed", "half_open", "open")
# unauthorized: refused unsigned by market.authorization (actors.settlement.Refused).
SETTLEMENT_OUTCOMES = ("confirmed", "failed", "expired", "unauthorized")
# Fill to confirmed settlement: from a block (~0.4 s) to a few expired blockhashes.
LATENCY_BUCKETS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


class LeaseChangeCounter:
    """Counts the markets a LockActor gained and lost, as one of its market listeners
    (an :class:`actors.lock_actor.MessageSink`).

    Not an actor of its own: the LockActor tells it :class:`MarketsChanged` from
    the LockActor's thread and counting two integers under a lock cannot block
    it, so a thread (and a place in the supervision tree) would buy nothing.
    Leases the LockActor drops by restarting are not announced, so they are not
    counted here.
    """

    def __init__(self) -> None:
        self._counts_lock = threading.Lock()
        self.gained = 0
        self.lost = 0

    def tell(self, message: Any) -> SendResult:
        if isinstance(message, MarketsChanged):
            with self._counts_lock:
                self.gained += len(message.gained)
                self.lost += len(message.lost)
        return SendResult.DELIVERED

    def counts(self) -> dict[str, int]:
        with self._counts_lock:
            return {"markets_gained_total": self.gained, "markets_lost_total": self.lost}


class PipelineMetrics:
    """Orders accepted, fills and settlements finished here, and fill-to-confirmed latency.

    :meth:`settlement_finished` is a SettlementActor listener: it is called on the
    actor's thread, and prometheus-client's counters are thread-safe and cheap.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.orders = Counter(
            "crank_orders_accepted",
            "Signed orders accepted by this node's intake.",
            registry=registry,
        )
        self.fills = Counter(
            "crank_fills", "Fills whose settlement this node finished.", registry=registry
        )
        self.settlements = Counter(
            "crank_settlements",
            "Settlements finished by this node, by outcome (expired: attempts found dead).",
            ["outcome"],
            registry=registry,
        )
        for outcome in SETTLEMENT_OUTCOMES:
            self.settlements.labels(outcome)  # each outcome shows from the first scrape, at 0
        self.fee_lamports = Counter(
            "crank_settlement_fee_lamports",
            "Lamports paid in fees by the settlement attempts that landed (confirmed, failed, "
            "out of compute units), by market and part (base: signatures; priority).",
            ["market", "part"],
            registry=registry,
        )
        self.compute_units_requested = Counter(
            "crank_settlement_compute_units_requested",
            "Compute-unit limits of the settlements that landed (what the priority fee paid "
            "for), by market.",
            ["market"],
            registry=registry,
        )
        self.fill_to_confirmed = Histogram(
            "crank_fill_to_confirmed_seconds",
            "Time from a fill being written to its settlement's confirmation.",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )

    def order_accepted(self, _order: Any) -> None:
        """An OrderIntake listener: one more order stored."""
        self.orders.inc()

    def settlement_finished(self, event: Any) -> None:
        """A SettlementActor listener (a ``Finished`` or an ``AttemptsExpired``)."""
        outcome = getattr(event, "outcome", None)
        if outcome is None:
            self.settlements.labels("expired").inc(len(getattr(event, "signatures", ())))
            spent = getattr(event, "fee_lamports", 0)
            if spent:  # attempts that landed out of compute units paid their fee
                self.fee_lamports.labels(getattr(event, "market_id", ""), "total").inc(spent)
            return
        self.settlements.labels(outcome).inc()
        self.fills.inc()
        fee = getattr(event, "fee", None)
        if fee is not None:
            market = str(event.fill.market_id)
            self.fee_lamports.labels(market, "base").inc(fee.base_lamports)
            self.fee_lamports.labels(market, "priority").inc(fee.priority_lamports)
            self.compute_units_requested.labels(market).inc(fee.compute_unit_limit)
        age_s = getattr(event, "fill_age_s", None)
        if outcome == "confirmed" and age_s is not None:
            self.fill_to_confirmed.observe(age_s)


class StatusCollector(Collector):
    """Prometheus metrics from a /status document (see :meth:`crank_node.node.node.Node.status`),
    read at each scrape. A part of the document that holds ``error`` (its actor
    did not answer) yields no metrics, and ``crank_status_part_up`` says so."""

    def __init__(self, status: Callable[[], Mapping[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        up = GaugeMetricFamily(
            "crank_status_part_up",
            "1 when this part of the node's status answered at this scrape, else 0.",
            labels=["part"],
        )
        for part in ("tree", "rpc", "leases", "blockhash", "markers"):
            value = status.get(part)
            up.add_metric([part], 1.0 if _answered(value) else 0.0)
        yield up
        uptime = GaugeMetricFamily("crank_uptime_seconds", "Seconds since this node started.")
        uptime.add_metric([], float(status.get("uptime_s", 0.0)))
        yield uptime
        if _answered(status.get("tree")):
            yield from tree_metrics(status["tree"])
        if _answered(status.get("rpc")):
            yield from rpc_metrics(status["rpc"])
        if _answered(status.get("leases")):
            yield from lease_metrics(status["leases"])
        if _answered(status.get("blockhash")):
            yield from blockhash_metrics(status["blockhash"])
        if _answered(status.get("markers")):
            yield from marker_metrics(status["markers"])
        if _answered(status.get("quarantine")):
            yield from quarantine_metrics(status["quarantine"])
        if _answered(status.get("fee_payers")):
            yield from fee_payer_metrics(status["fee_payers"])
        settlement = (status.get("pipeline") or {}).get("settlement")
        if settlement is not None and _answered(settlement):
            yield from settlement_fee_metrics(settlement)
        monitor = (status.get("pipeline") or {}).get("monitor")
        if monitor is not None and _answered(monitor):
            yield from monitor_metrics(monitor)


def monitor_metrics(monitor: Mapping[str, Any]) -> Iterator[Metric]:
    """From MonitorState: reads of the markets' orders (those a wake-up asked for apart)
    and, on PostgreSQL, the order feed: whether it listens, notices taken and skipped."""
    reads = CounterMetricFamily(
        "crank_order_reads", "Reads of a held market's orders (polls and wake-ups)."
    )
    reads.add_metric([], float(monitor.get("polls", 0)))
    woken = CounterMetricFamily(
        "crank_order_reads_on_wakeup",
        "Of crank_order_reads, those an order stored or cancelled asked for (intake, notices).",
    )
    woken.add_metric([], float(monitor.get("polls_on_wakeup", 0)))
    yield from (reads, woken)
    feed = monitor.get("order_feed")
    if feed is None:
        return  # SQLite, or wake-ups off: no feed, no series
    connected = GaugeMetricFamily(
        "crank_order_feed_connected",
        "1 while the order feed listens for other nodes' order notices (PostgreSQL), else 0.",
    )
    connected.add_metric([], 1.0 if feed.get("connected") else 0.0)
    yield connected
    for key, name, help_text in (
        ("notices", "crank_order_feed_notices", "Order notices of this schema passed on."),
        ("skipped", "crank_order_feed_skipped", "Notices of another schema, or not notices."),
        (
            "connects",
            "crank_order_feed_connects",
            "Listening sessions opened (1, then reconnects).",
        ),
    ):
        counter = CounterMetricFamily(name, help_text)
        counter.add_metric([], float(feed.get(key, 0)))
        yield counter


def fee_payer_metrics(fee_payers: Mapping[str, Any]) -> Iterator[Metric]:
    """Each fee payer's SOL, read at the scrape (no sample when the chain did not say)."""
    balance = GaugeMetricFamily(
        "crank_fee_payer_lamports", "Lamports held by each fee payer.", labels=["fee_payer"]
    )
    for payer, lamports in sorted(fee_payers.get("lamports", {}).items()):
        if lamports is not None:
            balance.add_metric([payer], float(lamports))
    yield balance


def settlement_fee_metrics(settlement: Mapping[str, Any]) -> Iterator[Metric]:
    """From SettlementState: per market, the priority price chosen, the compute-unit
    limit asked and the units a simulation used; the hard cap's bindings."""
    price = GaugeMetricFamily(
        "crank_priority_price_micro_lamports",
        "Compute-unit price of each market's last attempt (after the hard cap).",
        labels=["market"],
    )
    limit = GaugeMetricFamily(
        "crank_compute_unit_limit",
        "Compute-unit limit each market's attempts ask for.",
        labels=["market"],
    )
    used = GaugeMetricFamily(
        "crank_compute_units_used",
        "Compute units a simulated settlement of each market used.",
        labels=["market"],
    )
    for market, fees in sorted(settlement.get("fees", {}).items()):
        if fees.get("price_micro_lamports") is not None:
            price.add_metric([market], float(fees["price_micro_lamports"]))
        if fees.get("limit_asked") is not None:  # the simulated limit, or what stands in
            limit.add_metric([market], float(fees["limit_asked"]))
        if fees.get("units_simulated") is not None:
            used.add_metric([market], float(fees["units_simulated"]))
    bound = CounterMetricFamily(
        "crank_priority_fee_cap_bound",
        "Attempts whose price the hard per-settlement cap (priority_fee_max_lamports) lowered.",
    )
    bound.add_metric([], float(settlement.get("fee_cap_bound", 0)))
    refused = CounterMetricFamily(
        "crank_preflight_refused", "Settlement sends refused at preflight as hopeless."
    )
    refused.add_metric([], float(settlement.get("preflight_refused", 0)))
    yield from (price, limit, used, bound, refused)


def quarantine_metrics(quarantine: Mapping[str, Any]) -> Iterator[Metric]:
    """Rows quarantined now, by kind (every kind, 0 included, so alerts see a series)."""
    rows = GaugeMetricFamily(
        "crank_quarantined_rows",
        "Rows quarantined as untrusted now (crank-node quarantine list), by kind.",
        labels=["kind"],
    )
    counts = quarantine.get("by_kind", {})
    for kind in QUARANTINE_KINDS:
        rows.add_metric([kind], float(counts.get(kind, 0)))
    yield rows


def _answered(part: Mapping[str, Any] | None) -> bool:
    # describe_tree reports a supervisor that did not answer as "unresponsive".
    return part is not None and "error" not in part and "unresponsive" not in part


def flatten_tree(tree: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every child of a ``describe_tree`` document, depth first, nested supervisors' too."""
    children: list[dict[str, Any]] = []
    for child in tree.get("children", []):
        children.append(child)
        if "tree" in child:
            children.extend(flatten_tree(child["tree"]))
    return children


def tree_metrics(tree: Mapping[str, Any]) -> Iterator[Metric]:
    restarts = CounterMetricFamily(
        "crank_actor_restarts",
        "Restarts of each supervised actor since its supervisor started it.",
        labels=["path"],
    )
    mailbox = GaugeMetricFamily(
        "crank_actor_mailbox_depth", "Messages waiting in each actor's mailbox.", labels=["path"]
    )
    running = GaugeMetricFamily(
        "crank_actor_running", "1 while the actor is running, else 0.", labels=["path", "state"]
    )
    for child in flatten_tree(tree):
        path = str(child["path"])
        restarts.add_metric([path], float(child["restart_count"]))
        mailbox.add_metric([path], float(child["mailbox_size"]))
        running.add_metric([path, child["state"]], 1.0 if child["state"] == "running" else 0.0)
    yield from (restarts, mailbox, running)


def rpc_metrics(router: Mapping[str, Any]) -> Iterator[Metric]:
    """From ``RouterState.to_json()``: requests by endpoint, method and outcome
    (success; error: the request was refused, e.g. a program error; failure: the
    endpoint's fault), breaker states, latency and lag."""
    requests = CounterMetricFamily(
        "crank_rpc_requests",
        "RPC answers by endpoint, method and outcome (success, error, failure), probes included.",
        labels=["endpoint", "method", "outcome"],
    )
    breaker = GaugeMetricFamily(
        "crank_rpc_breaker_state",
        "1 for each endpoint's current circuit-breaker state, 0 for the others.",
        labels=["endpoint", "state"],
    )
    latency = GaugeMetricFamily(
        "crank_rpc_latency_seconds",
        "Smoothed latency of each endpoint (absent until it has answered).",
        labels=["endpoint"],
    )
    behind = GaugeMetricFamily(
        "crank_rpc_slots_behind",
        "Slots each endpoint is behind the highest confirmed slot seen.",
        labels=["endpoint"],
    )
    for endpoint in router["endpoints"]:
        name = str(endpoint["name"])
        for method, outcomes in endpoint.get("requests_by_method", {}).items():
            for outcome, count in outcomes.items():
                requests.add_metric([name, method, outcome], float(count))
        for state in BREAKER_STATES:
            breaker.add_metric([name, state], 1.0 if endpoint["breaker"] == state else 0.0)
        if endpoint["latency_ms"] is not None:
            latency.add_metric([name], endpoint["latency_ms"] / 1e3)
        if endpoint["slots_behind"] is not None:
            behind.add_metric([name], float(endpoint["slots_behind"]))
    yield from (requests, breaker, latency, behind)
    yield from backpressure_metrics(router["backpressure"], queued=int(router["queued"]))


def backpressure_metrics(stats: Mapping[str, Any], queued: int) -> Iterator[Metric]:
    in_flight = GaugeMetricFamily("crank_rpc_in_flight", "RPC requests in flight now.")
    in_flight.add_metric([], float(stats["in_flight"]))
    limit = GaugeMetricFamily("crank_rpc_max_in_flight", "RPC requests allowed in flight.")
    limit.add_metric([], float(stats["max_in_flight"]))
    waiting = GaugeMetricFamily("crank_rpc_queued", "RPC requests admitted, waiting.")
    waiting.add_metric([], float(queued))
    admitted = CounterMetricFamily(
        "crank_rpc_admissions",
        "RPC requests offered to backpressure, by priority and decision.",
        labels=["priority", "decision"],
    )
    for decision in ("accepted", "refused"):
        for priority, count in sorted(stats[decision].items()):
            admitted.add_metric([priority, decision], float(count))
    shed = CounterMetricFamily("crank_rpc_shed", "RPC requests shed under load.")
    shed.add_metric([], float(stats["shed"]))
    yield from (in_flight, limit, waiting, admitted, shed)


def lease_metrics(leases: Mapping[str, Any]) -> Iterator[Metric]:
    held = GaugeMetricFamily("crank_leases_held", "Leases this node holds now (every key).")
    held.add_metric([], float(len(leases["held"])))
    gained = CounterMetricFamily(
        "crank_market_leases_gained", "Market leases this node acquired by rebalancing."
    )
    gained.add_metric([], float(leases["markets_gained_total"]))
    lost = CounterMetricFamily(
        "crank_market_leases_lost",
        "Market leases this node gave up or lost (released, expired or taken over).",
    )
    lost.add_metric([], float(leases["markets_lost_total"]))
    yield from (held, gained, lost)


def blockhash_metrics(blockhash: Mapping[str, Any]) -> Iterator[Metric]:
    if blockhash.get("age_s") is None:  # none fetched yet: no sample rather than a fake 0
        return
    age = GaugeMetricFamily("crank_blockhash_age_seconds", "Age of the cached blockhash.")
    age.add_metric([], float(blockhash["age_s"]))
    yield age


def marker_metrics(markers: Mapping[str, Any]) -> Iterator[Metric]:
    """From ``storage.markers.MarkerTotals`` (the whole database: every node shows the
    same numbers): settlement markers holding rent, and the rent given back."""
    held = GaugeMetricFamily(
        "crank_markers_open",
        "Settlement markers on chain whose rent is not back yet, by state.",
        labels=["state"],
    )
    held.add_metric(["open"], float(markers["open"]))
    held.add_metric(["reclaiming"], float(markers["reclaiming"]))
    lamports = GaugeMetricFamily(
        "crank_marker_lamports_held", "Lamports held in open and reclaiming settlement markers."
    )
    lamports.add_metric([], float(markers["lamports_held"]))
    reclaimed = CounterMetricFamily(
        "crank_markers_reclaimed", "Settlement markers closed by a reclaim (rent back)."
    )
    reclaimed.add_metric([], float(markers["reclaimed"]))
    back = CounterMetricFamily(
        "crank_marker_lamports_reclaimed", "Lamports given back to fee payers by reclaims."
    )
    back.add_metric([], float(markers["lamports_reclaimed"]))
    missing = CounterMetricFamily(
        "crank_markers_missing",
        "Settlement markers found gone at finalized with no reclaim of ours (investigate).",
    )
    missing.add_metric([], float(markers["missing"]))
    yield from (held, lamports, reclaimed, back, missing)


class NodeMetrics:
    """One node's registry: the pipeline's metrics, the lease counter, and (once
    :meth:`observe` is called) the scrape-time metrics from its status."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pipeline = PipelineMetrics(self.registry)
        self.lease_changes = LeaseChangeCounter()
        self._observed = False

    def observe(self, status: Callable[[], Mapping[str, Any]]) -> None:
        """Read ``status()`` at every scrape (once; a second call is ignored)."""
        if not self._observed:
            self._observed = True
            self.registry.register(StatusCollector(status))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (runs the status probes)."""
        return generate_latest(self.registry)
