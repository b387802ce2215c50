"""A chaos run's timeline as a picture: one lane per node on a shared time axis (seconds
from the first order), with the faults that hit the node as coloured bars, the number
of markets whose lease it held, and the fills it settled per second. The faults on
what the nodes share (RPC endpoints, the database) get a strip of their own above.

:func:`render_svg` is pure: a :class:`Timeline` in, an SVG document out (hand-written,
no plotting library). :func:`build_timeline` makes the :class:`Timeline` from what a
run saw: the faults injected, the lease monitor's spans and the settlement times
read from the nodes' logs (:func:`settled_times`). The run writes it next to its JSON
report (see :mod:`crank_node.cli.chaos`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from crank_node.chaos.faults import FaultKind
from crank_node.chaos.monitor import LeaseSpan
from crank_node.chaos.scheduler import InjectedFault

__all__ = [
    "Interval",
    "NodeLane",
    "Timeline",
    "build_timeline",
    "render_svg",
    "settled_times",
]

MARKET_PREFIX = "market:"
# What a node logs when it confirms settlements: one line per settlement, or one per
# batch with ``count`` of them (storage.settlement_batch).
SETTLED_ACTIONS = (
    "storage.settlement_confirmed",
    "storage.settlement_confirmed_unknown",
    "storage.settlements_confirmed",
)
LEASE_GAP_S = 0.5  # two spans of one lease this close are one holding (monitor polls)

WIDTH = 1100
LEFT = 170  # lane labels
RIGHT = 20
PLOT_W = WIDTH - LEFT - RIGHT
FAULT_ROW_H = 10
LEASE_H = 28
FILLS_H = 40
LANE_GAP = 12
MAX_BINS = PLOT_W // 2  # fills are counted per second, or per wider bins on long runs
TARGET_TICKS = 10
PALETTE = (
    "#d62728",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#7f7f7f",
    "#2ca02c",
    "#1f77b4",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
)
LEASE_FILL = "#c6dbef"
FILLS_STROKE = "#08519c"

_XOf = Callable[[float], float]  # run seconds to x


@dataclass(frozen=True)
class Interval:
    """From ``start_s`` to ``end_s`` (run seconds): a fault of kind ``kind``, or a lease
    on market ``kind``. ``label`` is shown as the bar's tooltip."""

    start_s: float
    end_s: float
    kind: str
    label: str = ""


@dataclass(frozen=True)
class NodeLane:
    """One node: the faults on it, its lease holdings, when it settled (one time per
    settlement confirmed), and a note for its label (its clock skew, say)."""

    node: str
    faults: tuple[Interval, ...] = ()
    leases: tuple[Interval, ...] = ()
    settled_at_s: tuple[float, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Timeline:
    seed: int
    duration_s: float
    lanes: tuple[NodeLane, ...]
    shared_faults: tuple[Interval, ...] = ()  # on RPC endpoints or the database
    markets: int = 0
    database: str = ""


# -- from a run ----------------------------------------------------------------------


def build_timeline(
    *,
    seed: int,
    duration_s: float,
    node_ids: Sequence[str],
    injected: Sequence[InjectedFault],
    leases: Sequence[LeaseSpan],
    settled: Mapping[str, Sequence[float]],
    markets: int = 0,
    database: str = "",
    notes: Mapping[str, str] | None = None,
) -> Timeline:
    """The timeline of a run: faults that were applied (one never healed lasts to the
    end), live market leases merged over the monitor's poll gaps, settlement times."""
    node_faults: dict[str, list[Interval]] = {node: [] for node in node_ids}
    shared: list[Interval] = []
    for fault in injected:
        if fault.applied_at_s is None:
            continue
        end_s = fault.healed_at_s if fault.healed_at_s is not None else duration_s
        label = f"{fault.kind.value} {fault.target} {fault.planned.parameters()}".rstrip()
        bar = Interval(fault.applied_at_s, end_s, fault.kind.value, label)
        on_node = fault.kind.lane in ("node", "net") and 1 <= fault.planned.target <= len(node_ids)
        if on_node:
            node_faults[node_ids[fault.planned.target - 1]].append(bar)
        else:
            shared.append(bar)
    lanes = tuple(
        NodeLane(
            node,
            tuple(node_faults[node]),
            _held(leases, node),
            tuple(sorted(settled.get(node, ()))),
            (notes or {}).get(node, ""),
        )
        for node in node_ids
    )
    return Timeline(seed, duration_s, lanes, tuple(shared), markets, database)


def _held(leases: Sequence[LeaseSpan], node: str) -> tuple[Interval, ...]:
    by_market: dict[str, list[tuple[float, float]]] = {}
    for span in leases:
        if span.holder == node and span.live and span.key.startswith(MARKET_PREFIX):
            market = span.key.removeprefix(MARKET_PREFIX)
            by_market.setdefault(market, []).append((span.first_seen_s, span.last_seen_s))
    held = []
    for market, spans in sorted(by_market.items()):
        spans.sort()
        start_s, end_s = spans[0]
        for first_s, last_s in spans[1:]:
            if first_s - end_s > LEASE_GAP_S:
                held.append(Interval(start_s, end_s, market))
                start_s = first_s
            end_s = max(end_s, last_s)
        held.append(Interval(start_s, end_s, market))
    return tuple(sorted(held, key=lambda i: (i.start_s, i.kind)))


def settled_times(
    workdir: Path,
    node_ids: Sequence[str],
    *,
    wall_at_zero_s: float,
    clock_offsets_s: Mapping[str, float] | None = None,
) -> dict[str, list[float]]:
    """Per node, the run second of each settlement it confirmed, from its JSON log
    (``<workdir>/<node>.jsonl``; a skewed node's offset is taken off its times)."""
    found: dict[str, list[float]] = {}
    for node in node_ids:
        offset = (clock_offsets_s or {}).get(node, 0.0)
        times = found.setdefault(node, [])
        for time, count in _settlement_lines(workdir / f"{node}.jsonl"):
            times += [time - offset - wall_at_zero_s] * count
    return found


def _settlement_lines(path: Path) -> Iterable[tuple[float, int]]:
    if not path.exists():
        return
    with path.open() as lines:
        for line in lines:
            if "confirmed" not in line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a SIGKILL
            if isinstance(entry, dict) and entry.get("action") in SETTLED_ACTIONS:
                yield float(entry["time"]), int(entry.get("count", 1))


# -- the picture ---------------------------------------------------------------------


def render_svg(timeline: Timeline) -> str:
    """The timeline as a standalone SVG document."""
    span_s = timeline.duration_s if timeline.duration_s > 0 else 1.0
    kinds = _kinds(timeline)
    colours = _colours(kinds)
    body: list[str] = []
    y = 24
    title = (
        f"crank-node chaos, seed {timeline.seed}: {timeline.duration_s:.1f} s, "
        f"{len(timeline.lanes)} nodes"
        + (f", {timeline.markets} markets" if timeline.markets else "")
        + (f", {timeline.database}" if timeline.database else "")
    )
    body.append(_text(LEFT, y, title, size=15, weight="bold", cls="title"))
    y += 10
    y = _legend(body, kinds, colours, y + 6)

    def x_of(seconds: float) -> float:
        return LEFT + PLOT_W * min(max(seconds, 0.0), span_s) / span_s

    top, grid_at = y, len(body)
    if timeline.shared_faults:
        rows = _pack(timeline.shared_faults)
        height = max(1, len(rows)) * FAULT_ROW_H + 8
        body.append(f'<g class="shared" transform="translate(0,{y})">')
        body.append(_text(8, 14, "RPC endpoints, database", size=11, cls="label"))
        body += _fault_bars(rows, colours, x_of, 4)
        body.append("</g>")
        y += height + LANE_GAP
    for lane in timeline.lanes:
        y = _lane(body, lane, timeline=timeline, colours=colours, x_of=x_of, y=y)
    grid, labels, y = _axis(span_s, x_of, top, y)
    body[grid_at:grid_at] = grid
    body += labels
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" '
        f'viewBox="0 0 {WIDTH} {y}" font-family="sans-serif">'
    )
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            head,
            f"<title>{escape(title)}</title>",
            f'<rect x="0" y="0" width="{WIDTH}" height="{y}" fill="white"/>',
            *body,
            "</svg>",
            "",
        ]
    )


def _kinds(timeline: Timeline) -> list[str]:
    seen = {bar.kind for bar in timeline.shared_faults}
    seen |= {bar.kind for lane in timeline.lanes for bar in lane.faults}
    order = [kind.value for kind in FaultKind]
    return sorted(seen, key=lambda k: (order.index(k) if k in order else len(order), k))


def _colours(kinds: Sequence[str]) -> dict[str, str]:
    order = [kind.value for kind in FaultKind]
    return {
        kind: PALETTE[(order.index(kind) if kind in order else len(order) + i) % len(PALETTE)]
        for i, kind in enumerate(kinds)
    }


def _legend(body: list[str], kinds: Sequence[str], colours: Mapping[str, str], y: int) -> int:
    items = [(kind, colours[kind], "fault") for kind in kinds]
    items += [("markets held (lease)", LEASE_FILL, "lease"), ("fills settled/s", "", "fills")]
    per_row = max(1, PLOT_W // 150)
    body.append('<g class="legend">')
    for index, (name, colour, what) in enumerate(items):
        x, row_y = LEFT + 150 * (index % per_row), y + 16 * (index // per_row)
        if what == "fills":
            swatch = (
                f'<line x1="{x}" y1="{row_y + 5}" x2="{x + 12}" y2="{row_y + 5}" '
                f'stroke="{FILLS_STROKE}" stroke-width="2"/>'
            )
        else:
            swatch = f'<rect x="{x}" y="{row_y}" width="12" height="10" fill="{colour}"/>'
        body.append(
            f'<g class="legend-item" data-kind={quoteattr(name)}>{swatch}'
            + _text(x + 16, row_y + 9, name, size=11)
            + "</g>"
        )
    body.append("</g>")
    return y + 16 * math.ceil(len(items) / per_row) + 8


def _pack(bars: Sequence[Interval]) -> list[list[Interval]]:
    """Bars in rows, none overlapping another in its row (first row that fits)."""
    rows: list[list[Interval]] = []
    for bar in sorted(bars, key=lambda b: (b.start_s, b.end_s)):
        for row in rows:
            if row[-1].end_s <= bar.start_s:
                row.append(bar)
                break
        else:
            rows.append([bar])
    return rows


def _fault_bars(
    rows: Sequence[Sequence[Interval]], colours: Mapping[str, str], x_of: _XOf, y: int
) -> list[str]:
    out = []
    for index, row in enumerate(rows):
        for bar in row:
            x0, x1 = x_of(bar.start_s), x_of(max(bar.end_s, bar.start_s))
            out.append(
                f'<rect class="fault" data-kind={quoteattr(bar.kind)} '
                f'data-start-s="{bar.start_s:.3f}" data-end-s="{bar.end_s:.3f}" '
                f'x="{x0:.2f}" y="{y + index * FAULT_ROW_H}" width="{max(x1 - x0, 0.0):.2f}" '
                f'height="{FAULT_ROW_H - 2}" fill="{colours[bar.kind]}">'
                f"<title>{escape(_bar_title(bar))}</title></rect>"
            )
    return out


def _bar_title(bar: Interval) -> str:
    return f"{bar.label or bar.kind}: +{bar.start_s:.1f}s .. +{bar.end_s:.1f}s"


def _lane(
    body: list[str],
    lane: NodeLane,
    *,
    timeline: Timeline,
    colours: Mapping[str, str],
    x_of: _XOf,
    y: int,
) -> int:
    rows = _pack(lane.faults)
    faults_h = max(1, len(rows)) * FAULT_ROW_H
    height = 4 + faults_h + 4 + LEASE_H + 4 + FILLS_H + 4
    body.append(f'<g class="lane" data-node={quoteattr(lane.node)} transform="translate(0,{y})">')
    body.append(
        f'<rect x="{LEFT}" y="0" width="{PLOT_W}" height="{height}" fill="#f4f4f4" '
        f'fill-opacity="0.6" stroke="#cccccc"/>'
    )
    body.append(_text(8, 16, lane.node, size=12, weight="bold", cls="label"))
    if lane.note:
        body.append(_text(8, 30, lane.note, size=10, cls="note"))
    body += _fault_bars(rows, colours, x_of, 4)
    lease_y = 4 + faults_h + 4
    most = max(timeline.markets, _most_held(lane.leases), 1)
    body.append(_steps(lane.leases, most, x_of, lease_y, timeline.duration_s))
    body.append(_text(8, lease_y + LEASE_H - 4, f"markets held (max {most})", size=10))
    fills_y = lease_y + LEASE_H + 4
    body.append(_fills(lane.settled_at_s, x_of, fills_y, timeline.duration_s))
    body.append("</g>")
    return y + height + LANE_GAP


def _events(leases: Sequence[Interval]) -> list[tuple[float, int]]:
    return sorted([(i.start_s, 1) for i in leases] + [(i.end_s, -1) for i in leases])


def _most_held(leases: Sequence[Interval]) -> int:
    held = most = 0
    for _, change in _events(leases):
        held += change
        most = max(most, held)
    return most


def _steps(leases: Sequence[Interval], most: int, x_of: _XOf, y: int, end_s: float) -> str:
    """The number of markets held, as a filled step area (bottom at ``y + LEASE_H``)."""
    base = y + LEASE_H

    def level(count: int) -> float:
        return base - LEASE_H * count / most

    points = [(x_of(0.0), float(base))]
    held = 0
    for at_s, change in _events(leases):
        x = x_of(at_s)
        points.append((x, level(held)))
        held += change
        points.append((x, level(held)))
    points.append((x_of(end_s), level(held)))
    points.append((x_of(end_s), float(base)))
    path = " ".join(f"{x:.2f},{py:.2f}" for x, py in points)
    return (
        f'<polygon class="leases" points="{path}" fill="{LEASE_FILL}" stroke="#6baed6" '
        f'stroke-width="0.5"/>'
    )


def _fills(settled_at_s: Sequence[float], x_of: _XOf, y: int, duration_s: float) -> str:
    """Settlements per second as a step line (per wider bin, averaged, on long runs)."""
    span_s = duration_s if duration_s > 0 else 1.0  # as on the axis
    bin_s = max(1.0, float(math.ceil(span_s / MAX_BINS)))
    bins = max(1, math.ceil(span_s / bin_s))
    counts = [0] * bins
    for at_s in settled_at_s:
        if 0 <= at_s <= span_s:
            counts[min(int(at_s // bin_s), bins - 1)] += 1
    # The last bin may be cut short by the end of the run: its own width, not bin_s.
    rates = [count / (min((i + 1) * bin_s, span_s) - i * bin_s) for i, count in enumerate(counts)]
    top = max(rates, default=0.0) or 1.0
    base = y + FILLS_H
    points = []
    for index, rate in enumerate(rates):
        py = base - FILLS_H * rate / top
        points += [(x_of(index * bin_s), py), (x_of(min((index + 1) * bin_s, span_s)), py)]
    path = " ".join(f"{x:.2f},{py:.2f}" for x, py in points)
    peak = max(rates, default=0.0)
    return (
        f'<g class="fills" data-settled="{len(settled_at_s)}" data-bin-s="{bin_s:g}">'
        f'<polyline points="{path}" fill="none" stroke="{FILLS_STROKE}" stroke-width="1.2"/>'
        + _text(8, base - 4, f"fills settled/s (peak {peak:.3g})", size=10)
        + "</g>"
    )


def _axis(span_s: float, x_of: _XOf, top: int, bottom: int) -> tuple[list[str], list[str], int]:
    """The grid lines (drawn under the lanes), the axis with its tick labels, and the
    height of the picture with them."""
    step = _tick_step(span_s)
    grid, labels = [], ['<g class="axis">']
    labels.append(
        f'<line x1="{LEFT}" y1="{bottom}" x2="{LEFT + PLOT_W}" y2="{bottom}" stroke="black"/>'
    )
    for index in range(int(span_s // step) + 1):
        seconds = index * step
        x = x_of(seconds)
        grid.append(
            f'<line class="grid" x1="{x:.2f}" y1="{top}" x2="{x:.2f}" y2="{bottom}" '
            f'stroke="#dddddd"/>'
        )
        labels.append(
            f'<g class="tick" data-s="{seconds:g}">'
            f'<line x1="{x:.2f}" y1="{bottom}" x2="{x:.2f}" y2="{bottom + 4}" stroke="black"/>'
            + _text(x, bottom + 16, f"{seconds:g}", size=10, anchor="middle")
            + "</g>"
        )
    labels.append(
        _text(
            LEFT + PLOT_W / 2, bottom + 32, "seconds from the first order", size=11, anchor="middle"
        )
    )
    labels.append("</g>")
    return grid, labels, bottom + 44


def _tick_step(span_s: float) -> float:
    """A 1-2-5 step giving about TARGET_TICKS ticks over ``span_s``."""
    raw = span_s / TARGET_TICKS
    power = 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: int,
    weight: str = "normal",
    anchor: str = "start",
    cls: str = "",
) -> str:
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<text{klass} x="{x:.2f}" y="{y:.2f}" font-size="{size}" font-weight="{weight}" '
        f'text-anchor="{anchor}">{escape(text)}</text>'
    )
