"""The chaos run's timeline SVG (crank_node.chaos.timeline): rendered from a Timeline,
parsed back with ElementTree, and read for what an operator would look at."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

from crank_node.chaos.faults import FaultKind, PlannedFault
from crank_node.chaos.monitor import LeaseSpan
from crank_node.chaos.scheduler import InjectedFault
from crank_node.chaos.timeline import (
    Interval,
    NodeLane,
    Timeline,
    build_timeline,
    render_svg,
    settled_times,
)

SVG = "{http://www.w3.org/2000/svg}"
NODES = ("chaos-node-1", "chaos-node-2", "chaos-node-3")


def _parse(timeline: Timeline) -> ElementTree.Element:
    return ElementTree.fromstring(render_svg(timeline))


def _lanes(root: ElementTree.Element) -> list[ElementTree.Element]:
    return root.findall(f"{SVG}g[@class='lane']")


def _faults(root: ElementTree.Element) -> list[ElementTree.Element]:
    return [e for e in root.iter(f"{SVG}rect") if e.get("class") == "fault"]


def _ticks(root: ElementTree.Element) -> dict[float, float]:
    """Each tick's seconds and its x on the axis."""
    ticks = {}
    for tick in root.iter(f"{SVG}g"):
        if tick.get("class") == "tick":
            line = tick.find(f"{SVG}line")
            assert line is not None
            ticks[float(tick.get("data-s", "nan"))] = float(line.get("x1", "nan"))
    return ticks


def _polyline(lane: ElementTree.Element) -> list[tuple[float, float]]:
    fills = next(g for g in lane.iter(f"{SVG}g") if g.get("class") == "fills")
    line = fills.find(f"{SVG}polyline")
    assert line is not None
    return [
        (float(x), float(y))
        for x, y in (point.split(",") for point in line.get("points", "").split())
    ]


def _a_run() -> Timeline:
    lane_1 = NodeLane(
        NODES[0],
        faults=(Interval(12.5, 20.0, "node_kill"), Interval(30.0, 34.0, "net_db")),
        leases=(Interval(0.0, 12.5, "m1"), Interval(0.0, 12.5, "m2"), Interval(25, 60, "m1")),
        settled_at_s=tuple(0.25 * i for i in range(40)),
    )
    lane_2 = NodeLane(NODES[1], leases=(Interval(13.0, 60.0, "m2"),), settled_at_s=(14.0, 14.5))
    lane_3 = NodeLane(NODES[2], faults=(Interval(40.0, 44.0, "node_stop"),))
    shared = (Interval(5.0, 9.0, "rpc_down"), Interval(6.0, 8.0, "rpc_lag"))
    return Timeline(7, 60.0, (lane_1, lane_2, lane_3), shared, markets=4, database="sqlite")


def test_the_svg_is_well_formed_with_a_lane_per_node_and_the_seed_in_its_title() -> None:
    root = _parse(_a_run())
    assert [lane.get("data-node") for lane in _lanes(root)] == list(NODES)
    title = root.find(f"{SVG}title")
    assert title is not None and title.text is not None
    assert "seed 7" in title.text and "60.0 s" in title.text
    legend = {item.get("data-kind") for item in root.iter(f"{SVG}g")} - {None}
    assert {"node_kill", "net_db", "node_stop", "rpc_down", "rpc_lag"} <= legend


def test_a_fault_bar_spans_its_times_on_the_axis() -> None:
    """x and width of each bar are where its start and end fall between the ticks."""
    root = _parse(_a_run())
    ticks = _ticks(root)
    assert min(ticks) == 0.0 and max(ticks) == 60.0
    per_s = (ticks[60.0] - ticks[0.0]) / 60.0
    bars = {bar.get("data-kind"): bar for bar in _faults(root)}
    assert len(bars) == 5
    for kind, start_s, end_s in (("node_kill", 12.5, 20.0), ("rpc_down", 5.0, 9.0)):
        bar = bars[kind]
        assert abs(float(bar.get("x", "nan")) - (ticks[0.0] + start_s * per_s)) < 0.01
        assert abs(float(bar.get("width", "nan")) - (end_s - start_s) * per_s) < 0.01
    kill = next(iter(_lanes(root)[0].iter(f"{SVG}rect")), None)
    assert kill is not None  # the kill is drawn in node 1's lane, not another's
    assert [bar.get("data-kind") for bar in _faults(_lanes(root)[2])] == ["node_stop"]


def test_overlapping_faults_get_rows_of_their_own() -> None:
    root = _parse(_a_run())
    down, lag = (
        next(bar for bar in _faults(root) if bar.get("data-kind") == kind)
        for kind in ("rpc_down", "rpc_lag")
    )
    assert down.get("y") != lag.get("y")


def test_an_empty_run_still_draws_an_axis_and_no_lane() -> None:
    root = _parse(Timeline(seed=0, duration_s=0.0, lanes=()))
    assert _lanes(root) == [] and _faults(root) == []
    assert 0.0 in _ticks(root)


def test_a_node_with_no_fills_has_a_flat_fills_line_and_no_lease_area() -> None:
    lane = _lanes(_parse(_a_run()))[2]
    points = _polyline(lane)
    assert len({y for _, y in points}) == 1  # at the baseline throughout
    fills = next(g for g in lane.iter(f"{SVG}g") if g.get("class") == "fills")
    assert fills.get("data-settled") == "0"
    leases = next(p for p in lane.iter(f"{SVG}polygon") if p.get("class") == "leases")
    assert len({point.split(",")[1] for point in leases.get("points", "").split()}) == 1


def test_fills_are_counted_per_second() -> None:
    """Node 1 settled 4 a second over its first 10 s: the line's top is there, then 0."""
    lane = _lanes(_parse(_a_run()))[0]
    points = _polyline(lane)
    top = min(y for _, y in points)
    baseline = max(y for _, y in points)
    ticks = _ticks(_parse(_a_run()))
    ten_s = ticks[10.0]
    assert all(y == top for x, y in points if x < ten_s - 0.01)
    assert all(y == baseline for x, y in points if x > ten_s + 0.01)
    assert len(points) == 2 * 60  # a step per second


def test_a_day_long_run_stays_small_with_few_ticks() -> None:
    """86 400 s: the fills are binned wider than a second, the ticks stay about ten."""
    day_s = 86_400.0
    lane = NodeLane(
        "n",
        faults=(Interval(3600.0, 7200.0, "db_lock"),),
        leases=(Interval(0.0, day_s, "m"),),
        settled_at_s=tuple(float(s) for s in range(86_400)),
    )
    svg = render_svg(Timeline(1, day_s, (lane,)))
    root = ElementTree.fromstring(svg)
    assert len(svg) < 100_000
    ticks = _ticks(root)
    assert 5 <= len(ticks) <= 12 and max(ticks) <= day_s
    fills = next(g for g in _lanes(root)[0].iter(f"{SVG}g") if g.get("class") == "fills")
    assert float(fills.get("data-bin-s", "0")) > 1
    assert len({y for _, y in _polyline(_lanes(root)[0])}) == 1  # one a second, all along


def test_text_is_escaped() -> None:
    lane = NodeLane(
        "<node & co>",
        faults=(Interval(1.0, 2.0, "x<y>&z", label="a </text> b"),),
        note="clock <+1h>",
    )
    svg = render_svg(Timeline(3, 10.0, (lane,), database="<db>&"))
    assert "<node & co>" not in svg and "</text> b" not in svg
    root = ElementTree.fromstring(svg)
    (parsed,) = _lanes(root)
    assert parsed.get("data-node") == "<node & co>"
    texts = {text.text for text in parsed.iter(f"{SVG}text")}
    assert {"<node & co>", "clock <+1h>"} <= texts
    (bar,) = _faults(root)
    assert bar.get("data-kind") == "x<y>&z"
    tooltip = bar.find(f"{SVG}title")
    assert tooltip is not None and tooltip.text is not None and "a </text> b" in tooltip.text


def _injected(
    kind: FaultKind, target: int, applied: float | None, healed: float | None
) -> InjectedFault:
    planned = PlannedFault(kind, applied or 0.0, 3.0, target)
    return InjectedFault(planned, f"target {target}", applied, healed)


def _span(key: str, holder: str, first: float, last: float, *, live: bool = True) -> LeaseSpan:
    return LeaseSpan(key, holder, 1, datetime(2026, 1, 1, tzinfo=UTC), live, first, last)


def test_a_runs_timeline_puts_each_fault_where_it_hit_and_merges_lease_polls() -> None:
    injected = [
        _injected(FaultKind.NODE_KILL, 2, 5.0, 9.0),
        _injected(FaultKind.NET_DB, 1, 11.0, None),  # never healed: to the end
        _injected(FaultKind.RPC_LAG, 0, 6.0, 8.0),
        _injected(FaultKind.DB_LOCK, 0, 7.0, 8.5),
        _injected(FaultKind.NODE_STOP, 3, None, None),  # never applied
    ]
    leases = [
        _span("market:m1", NODES[0], 0.0, 4.0),
        _span("market:m1", NODES[0], 4.2, 10.0),  # a new token a poll later: one holding
        _span("market:m1", NODES[0], 10.1, 12.0, live=False),  # expired: not held
        _span("market:m1", NODES[0], 15.0, 20.0),  # past the gap: held again
        _span("members:x", NODES[0], 0.0, 20.0),  # not a market
    ]
    timeline = build_timeline(
        seed=5,
        duration_s=20.0,
        node_ids=NODES,
        injected=injected,
        leases=leases,
        settled={NODES[1]: [3.0, 1.0]},
        markets=2,
        notes={NODES[2]: "clock +1h"},
    )
    one, two, three = timeline.lanes
    assert [(f.kind, f.start_s, f.end_s) for f in one.faults] == [("net_db", 11.0, 20.0)]
    assert [(f.kind, f.start_s, f.end_s) for f in two.faults] == [("node_kill", 5.0, 9.0)]
    assert three.faults == () and three.note == "clock +1h"
    assert sorted(f.kind for f in timeline.shared_faults) == ["db_lock", "rpc_lag"]
    assert [(i.kind, i.start_s, i.end_s) for i in one.leases] == [
        ("m1", 0.0, 10.0),
        ("m1", 15.0, 20.0),
    ]
    assert two.settled_at_s == (1.0, 3.0) and one.settled_at_s == ()


def test_settlement_times_come_from_each_nodes_log(tmp_path: Path) -> None:
    """One per single confirmation, ``count`` per batch line; a skewed clock is taken
    off; other lines and a line cut short are skipped."""
    wall0 = 1_700_000_000.0
    lines = [
        {"time": wall0 + 2.0, "action": "storage.settlement_confirmed"},
        {"time": wall0 + 3.0, "action": "storage.settlements_confirmed", "count": 3},
        {"time": wall0 + 4.0, "action": "settlement.sent", "message": "confirmed? no"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + '\n{"time": 1, "action": "stor'
    (tmp_path / "n1.jsonl").write_text(text)
    skewed = {"time": wall0 + 3605.0, "action": "storage.settlement_confirmed_unknown"}
    (tmp_path / "n2.jsonl").write_text(json.dumps(skewed) + "\n")
    found = settled_times(
        tmp_path, ("n1", "n2", "n3"), wall_at_zero_s=wall0, clock_offsets_s={"n2": 3600.0}
    )
    assert found == {"n1": [2.0, 3.0, 3.0, 3.0], "n2": [5.0], "n3": []}
