"""`crank-node status`: a running node's /status, as readable tables.

The URL defaults to the node's HTTP address (``CRANK_HTTP_ADDR``, else
127.0.0.1:8787). Exit codes: 0 printed; 1 nothing answered, or the answer was
not a node's status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

# Kept equal to crank_node.node.settings.DEFAULT_HTTP_ADDR (a unit test checks): importing
# crank_node.node.settings would load pydantic for a command that only reads one URL.
DEFAULT_HTTP_ADDR = "127.0.0.1:8787"
HTTP_ADDR_ENV = "CRANK_HTTP_ADDR"
TIMEOUT_S = 10.0
EXIT_OK = 0
EXIT_UNREACHABLE = 1

__all__ = ["format_status", "format_table", "register", "status_url"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="print a running node's status as tables",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        help=f"the node's base URL or /status URL (default: http://${HTTP_ADDR_ENV}, "
        f"else http://{DEFAULT_HTTP_ADDR})",
    )
    parser.add_argument(
        "--timeout-s", type=_positive_s, default=TIMEOUT_S, help="HTTP timeout in seconds"
    )
    parser.set_defaults(handler=run)


def _positive_s(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def status_url(url: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The /status URL: ``url`` (``HOST:PORT`` or a base URL), else the node's address."""
    given = url or f"http://{environ.get(HTTP_ADDR_ENV) or DEFAULT_HTTP_ADDR}"
    if "://" not in given:
        given = f"http://{given}"
    parts = urlsplit(given)
    return given if parts.path not in ("", "/") else f"{given.rstrip('/')}/status"


def run(args: argparse.Namespace) -> int:
    url = status_url(args.url)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout_s) as response:  # noqa: S310  (an operator-given http URL is the point)
            status = json.loads(response.read())
    except urllib.error.HTTPError as error:
        error.close()
        return _fail(f"{url} answered HTTP {error.code}: is this a crank node's address?")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return _fail(
            f"nothing answers at {url} ({reason}); is the node running, and is its "
            f"--http-addr / {HTTP_ADDR_ENV} the address given here?"
        )
    except ValueError as error:
        return _fail(f"{url} did not answer with JSON ({error})")
    if not isinstance(status, dict) or "node_id" not in status:
        return _fail(f"{url} answered JSON that is not a node's status")
    print(format_status(status))
    return EXIT_OK


def _fail(message: str) -> int:
    print(f"crank-node status: error: {message}", file=sys.stderr)
    return EXIT_UNREACHABLE


# -- tables -------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns as wide as their widest cell; None shows as ``-``."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in (list(headers), ["-" * width for width in widths], *cells)
    ]
    return "\n".join(lines) if rows else "\n".join([*lines, "(none)"])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return " ".join(str(value).split())  # one line per row, whatever the text holds


def format_status(status: Mapping[str, Any]) -> str:
    """The whole status: summary, actors, RPC endpoints, leases, backpressure."""
    sections = [
        _summary(status),
        _section("Actors", _actor_table(status.get("tree"))),
        _section("RPC endpoints", _endpoint_table(status.get("rpc"))),
        _section("Leases", _lease_table(status.get("leases"))),
        _section("Backpressure", _backpressure_table(status.get("rpc"))),
        _section("Settlement markers (all nodes)", _marker_table(status.get("markers"))),
    ]
    return "\n\n".join(sections)


def _section(title: str, body: str) -> str:
    return f"{title}\n{body}"


def _summary(status: Mapping[str, Any]) -> str:
    uptime = timedelta(seconds=round(float(status.get("uptime_s", 0))))
    in_flight = status.get("settlements_in_flight")
    pipeline = status.get("pipeline") or {}
    settlement = pipeline.get("settlement") or {}
    settling = f"{in_flight}" if in_flight is not None else "n/a (the pipeline did not answer)"
    if settlement.get("full"):
        settling += " (full: matching paused)"
    done = (
        f"{settlement['confirmed']} confirmed, {settlement['failed']} failed"
        if "confirmed" in settlement
        else "n/a"
    )
    matched = [market["market_id"] for market in (pipeline.get("match") or {}).get("markets", [])]
    return "\n".join(
        [
            f"node:                  {status['node_id']}",
            f"uptime:                {uptime}",
            f"settlements in flight: {settling}",
            f"settled here:          {done}",
            f"markets matched:       {', '.join(matched) or 'none'}",
        ]
    )


def _unanswered(part: Any) -> str | None:
    if part is None:
        return "(not available)"
    if isinstance(part, Mapping) and "error" in part:
        return f"(did not answer: {part['error']})"
    return None


def _actor_table(tree: Any) -> str:
    if (missing := _unanswered(tree)) or (missing := _unanswered_tree(tree)):
        return missing
    rows = [
        (c["path"], c["kind"], c["state"], c["restart_count"], c["mailbox_size"], c["last_failure"])
        for c in _flatten(tree)
    ]
    headers = ("ACTOR", "KIND", "STATE", "RESTARTS", "MAILBOX", "LAST FAILURE")
    return format_table(headers, rows)


def _unanswered_tree(tree: Mapping[str, Any]) -> str | None:
    return f"(did not answer: {tree['unresponsive']})" if "unresponsive" in tree else None


def _flatten(tree: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    children: list[Mapping[str, Any]] = []
    for child in tree.get("children", []):
        children.append(child)
        if "tree" in child:
            children.extend(_flatten(child["tree"]))
    return children


def _endpoint_table(router: Any) -> str:
    if missing := _unanswered(router):
        return missing
    rows = [
        (
            e["name"],
            e["url"],
            e["breaker"],
            e["latency_ms"],
            e["slots_behind"],
            e["successes"],
            e["failures"],
            e["last_error"],
        )
        for e in router["endpoints"]
    ]
    headers = ("ENDPOINT", "URL", "BREAKER", "LATENCY MS", "BEHIND", "OK", "FAILED", "LAST ERROR")
    return format_table(headers, rows)


def _lease_table(leases: Any) -> str:
    if missing := _unanswered(leases):
        return missing
    rows = [(h["key"], h["market"], h["fencing_token"], h["expires_at"]) for h in leases["held"]]
    table = format_table(("KEY", "MARKET", "FENCING TOKEN", "EXPIRES AT"), rows)
    gained, lost = leases["markets_gained_total"], leases["markets_lost_total"]
    return f"{table}\nmarkets gained: {gained}, lost: {lost}"


def _backpressure_table(router: Any) -> str:
    if missing := _unanswered(router):
        return missing
    stats = router["backpressure"]
    rows = [
        ("status", stats["status"]),
        ("in flight", f"{stats['in_flight']} / {stats['max_in_flight']}"),
        ("utilization", f"{stats['utilization']:.1%} (peak {stats['peak_utilization']:.1%})"),
        ("queued", router["queued"]),
        ("accepted", _by_priority(stats["accepted"])),
        ("refused", _by_priority(stats["refused"])),
        ("shed", stats["shed"]),
        ("rejection rate", f"{stats['rejection_rate']:.1%}"),
    ]
    return format_table(("MEASURE", "VALUE"), rows)


def _marker_table(markers: Any) -> str:
    if missing := _unanswered(markers):
        return missing
    rows = [
        ("open", markers["open"]),
        ("reclaiming", markers["reclaiming"]),
        ("lamports held", markers["lamports_held"]),
        ("reclaimed", markers["reclaimed"]),
        ("lamports reclaimed", markers["lamports_reclaimed"]),
        ("missing (gone, never reclaimed)", markers["missing"]),
    ]
    return format_table(("MARKERS", "VALUE"), rows)


def _by_priority(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{priority} {count}" for priority, count in sorted(counts.items())) or "-"
