"""crank_node/node/metrics.py against a fake /status document: what each metric says."""

from __future__ import annotations

from typing import Any, cast

from prometheus_client.parser import text_string_to_metric_families

from actors.lock_actor import MarketsChanged
from actors.settlement import AttemptsExpired, Finished, Refused
from crank_node.node.metrics import LeaseChangeCounter, NodeMetrics, flatten_tree
from market import Fill
from storage.leases import Lease
from supervision import SendResult
from tests.unit.cli import fake_status


def scrape(document: dict[str, Any]) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """metric sample name -> {sorted labels: value}, parsed from the exposition text."""
    metrics = NodeMetrics()
    metrics.observe(lambda: document)
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def test_actor_restarts_and_mailbox_depth_cover_nested_supervisors() -> None:
    """Every child of the tree, nested supervisors' children included, has its
    restart count and mailbox depth under its path."""
    samples = scrape(fake_status.status())
    restarts = samples["crank_actor_restarts_total"]
    assert restarts[(("path", "node/rpc"),)] == 2.0
    assert restarts[(("path", "node/pipeline/settle"),)] == 1.0
    assert samples["crank_actor_mailbox_depth"][(("path", "node/rpc"),)] == 7.0
    assert len(restarts) == 4


def test_rpc_requests_are_counted_by_endpoint_method_and_outcome() -> None:
    """The router's answers per endpoint, method and outcome become one counter with
    those three labels."""
    requests = scrape(fake_status.status())["crank_rpc_requests_total"]
    primary = ("endpoint", "primary")
    assert requests[(primary, ("method", "getSlot"), ("outcome", "success"))] == 30.0
    assert requests[(primary, ("method", "sendTransaction"), ("outcome", "error"))] == 1.0
    backup = ("endpoint", "backup")
    assert requests[(backup, ("method", "getSlot"), ("outcome", "failure"))] == 2.0


def test_breaker_state_is_one_for_the_current_state_and_zero_for_the_others() -> None:
    """A state set: per endpoint, exactly one of closed, half_open, open is 1."""
    breaker = scrape(fake_status.status())["crank_rpc_breaker_state"]
    assert breaker[(("endpoint", "backup"), ("state", "open"))] == 1.0
    assert breaker[(("endpoint", "backup"), ("state", "closed"))] == 0.0
    assert breaker[(("endpoint", "primary"), ("state", "closed"))] == 1.0
    assert sum(breaker.values()) == 2.0


def test_an_endpoint_without_latency_yet_has_no_latency_sample_rather_than_zero() -> None:
    """latency_ms None (never answered): no sample, so no fake 0 s latency."""
    latency = scrape(fake_status.status())["crank_rpc_latency_seconds"]
    assert latency == {(("endpoint", "primary"),): 0.025}


def test_backpressure_admissions_are_counted_by_priority_and_decision() -> None:
    """Accepted and refused requests per priority, shed and in flight, from the router."""
    samples = scrape(fake_status.status())
    admissions = samples["crank_rpc_admissions_total"]
    assert admissions[(("decision", "refused"), ("priority", "low"))] == 4.0
    assert admissions[(("decision", "accepted"), ("priority", "normal"))] == 7.0
    assert samples["crank_rpc_shed_total"][()] == 2.0
    assert samples["crank_rpc_in_flight"][()] == 3.0


def test_leases_held_gained_and_lost_and_blockhash_age_come_from_the_status() -> None:
    """Leases held now, markets gained and lost so far, and the blockhash's age."""
    samples = scrape(fake_status.status())
    assert samples["crank_leases_held"][()] == 1.0
    assert samples["crank_market_leases_gained_total"][()] == 3.0
    assert samples["crank_market_leases_lost_total"][()] == 2.0
    assert samples["crank_blockhash_age_seconds"][()] == 1.5


def test_a_part_that_did_not_answer_has_no_metrics_and_is_reported_down() -> None:
    """An actor that did not answer is not turned into zeros: its metrics are
    absent and crank_status_part_up says which part is missing."""
    samples = scrape(fake_status.status(rpc={"error": "TimeoutError()"}))
    assert "crank_rpc_requests_total" not in samples
    up = samples["crank_status_part_up"]
    assert up[(("part", "rpc"),)] == 0.0
    assert up[(("part", "tree"),)] == 1.0


def test_pipeline_metrics_are_declared_at_zero_from_the_first_scrape() -> None:
    """Orders, fills, settlements by outcome and the fill-to-confirmed histogram
    exist from the first scrape, at zero."""
    metrics = NodeMetrics()
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    for name in ("crank_orders_accepted", "crank_fills", "crank_settlements"):
        assert all(s.value == 0.0 for s in families[name].samples if s.name.endswith("_total"))
    outcomes = {s.labels["outcome"] for s in families["crank_settlements"].samples}
    assert outcomes == {"confirmed", "failed", "expired", "unauthorized"}
    assert families["crank_fill_to_confirmed_seconds"].type == "histogram"


def test_finished_settlements_feed_outcomes_fills_and_latency() -> None:
    """SettlementActor's events count settlements by outcome (expired attempts, and
    settlements refused as unauthorized, too), fills, and a confirmed one's fill age
    goes into the latency histogram."""
    metrics = NodeMetrics()
    fill = cast(Fill, None)  # not read by the metrics
    metrics.pipeline.settlement_finished(
        Finished("f1", fill, "confirmed", "sig", 9, fill_age_s=0.7)
    )
    metrics.pipeline.settlement_finished(Finished("f2", fill, "failed", "sig2", 9, "refused"))
    metrics.pipeline.settlement_finished(AttemptsExpired("f3", ("a", "b")))
    metrics.pipeline.settlement_finished(Refused("f4", fill, "unauthorized: price_atoms: ..."))
    value = metrics.registry.get_sample_value
    assert value("crank_settlements_total", {"outcome": "unauthorized"}) == 1.0
    assert value("crank_settlements_total", {"outcome": "confirmed"}) == 1.0
    assert value("crank_settlements_total", {"outcome": "failed"}) == 1.0
    assert value("crank_settlements_total", {"outcome": "expired"}) == 2.0
    assert value("crank_fills_total") == 3.0
    assert value("crank_fill_to_confirmed_seconds_count") == 1.0
    assert value("crank_fill_to_confirmed_seconds_bucket", {"le": "1.0"}) == 1.0


def test_each_node_has_a_registry_of_its_own() -> None:
    """Two NodeMetrics in one process do not share (or collide on) metrics."""
    first, second = NodeMetrics(), NodeMetrics()
    first.pipeline.fills.inc()
    assert first.registry.get_sample_value("crank_fills_total") == 1.0
    assert second.registry.get_sample_value("crank_fills_total") == 0.0


def test_lease_change_counter_counts_markets_gained_and_lost_and_ignores_other_messages() -> None:
    """MarketsChanged told by the LockActor adds its gained and lost markets; other
    messages are accepted and ignored."""
    lease = Lease("market:m1", "node-a", 1, None, None)  # type: ignore[arg-type]  (times unused)
    counter = LeaseChangeCounter()
    assert counter.tell(MarketsChanged((lease,), ("m2", "m3"))) is SendResult.DELIVERED
    counter.tell("something else")
    assert counter.counts() == {"markets_gained_total": 1, "markets_lost_total": 2}


def test_flatten_tree_lists_children_depth_first() -> None:
    """A nested supervisor's children follow the supervisor itself."""
    paths = [child["path"] for child in flatten_tree(fake_status.status()["tree"])]
    assert paths == ["node/locks", "node/rpc", "node/pipeline", "node/pipeline/settle"]


def test_an_unresponsive_supervision_tree_is_reported_down_not_as_an_empty_tree() -> None:
    """describe_tree's "unresponsive" answer yields no actor metrics and tree up = 0."""
    document = fake_status.status(tree={"name": "node", "unresponsive": "TimeoutError()"})
    samples = scrape(document)
    assert "crank_actor_restarts_total" not in samples
    assert samples["crank_status_part_up"][(("part", "tree"),)] == 0.0


def test_order_reads_and_the_order_feed_come_from_the_monitor() -> None:
    """Reads of the markets' orders and those woken; on PostgreSQL the feed's state.
    Without a feed (SQLite) there is no feed series; a monitor that did not answer
    has no metrics at all."""
    feed = {"connected": True, "notices": 7, "skipped": 1, "connects": 2}
    monitor = {"polls": 10, "polls_on_wakeup": 4, "order_feed": feed}
    samples = scrape(fake_status.status(pipeline={"monitor": monitor}))
    assert samples["crank_order_reads_total"][()] == 10.0
    assert samples["crank_order_reads_on_wakeup_total"][()] == 4.0
    assert samples["crank_order_feed_connected"][()] == 1.0
    assert samples["crank_order_feed_notices_total"][()] == 7.0
    assert samples["crank_order_feed_skipped_total"][()] == 1.0
    assert samples["crank_order_feed_connects_total"][()] == 2.0

    lost = {**monitor, "order_feed": {**feed, "connected": False}}
    assert (
        scrape(fake_status.status(pipeline={"monitor": lost}))["crank_order_feed_connected"][()]
        == 0.0
    )
    on_sqlite = scrape(fake_status.status(pipeline={"monitor": {**monitor, "order_feed": None}}))
    assert on_sqlite["crank_order_reads_total"][()] == 10.0
    assert not any(name.startswith("crank_order_feed") for name in on_sqlite)
    silent = scrape(fake_status.status())  # its monitor answered with an error
    assert not any(name.startswith(("crank_order_reads", "crank_order_feed")) for name in silent)
