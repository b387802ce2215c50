"""The HTTP listeners under abuse: a slowloris hold and a one-maker flood, on 127.0.0.1.

    python3 benchmarks/http_abuse_bench.py [--connections 1100] [--hold-s 6]
                                           [--flood 3000] [--honest 40]

Starts the node's real HTTP server (crank_node.node.health.HealthServer) in this process over
a stand-in node (always healthy) and a real OrderIntake on a temporary SQLite file
with one market (no chain checks), then:

* slowloris: ``--connections`` connections each send half a request head and
  nothing more, held for ``--hold-s``; meanwhile /health is asked every 0.2 s.
  Prints how many were accepted and held, refused (503) at the cap, and closed
  by the server (with when), and /health's latency during the hold.
* flood: client A (source address 127.0.0.2) sends ``--flood`` signed orders of
  maker X as fast as 32 connections allow, until B is done (at most ``--flood``);
  client B (127.0.0.3) sends ``--honest`` orders of maker Y, 8 a second, first
  alone (baseline) and then during the flood. Prints each client's share of 429s
  and B's latency p50/p99.

Traffic goes only to 127.0.0.1 and is bounded in count and time. Prints figures;
asserts nothing. Works on the code before the limits too (one listener, no
limits), to show the difference: the script reads what the server offers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solders.keypair import Keypair

import storage
from crank_node.node.health import HealthServer
from crank_node.node.intake import OrderIntake
from market import Market, Order, Side, sign_order

LOT, TICK = 10**6, 1_000
MARKET_ID = "BENCH"
HEADER_TIMEOUT_S = 2.0
OP_TIMEOUT_S = 10.0


class StandInNode:
    """What the HTTP server reads of a node (always healthy: this measures HTTP)."""

    def __init__(self, intake: OrderIntake) -> None:
        self.intake = intake
        self.settings = SimpleNamespace(instance_id="bench")

    def health(self) -> tuple[str, dict[str, Any]]:
        return "healthy", {}

    def status(self) -> dict[str, Any]:
        return {}


def start_server(intake: OrderIntake) -> tuple[HealthServer, int, int, str]:
    node = StandInNode(intake)
    try:
        from crank_node.node.http_server import HttpLimits  # noqa: PLC0415  (absent before the limits)

        limits = HttpLimits(header_timeout_s=HEADER_TIMEOUT_S)
        server = HealthServer(node, "127.0.0.1", 0, limits=limits)  # type: ignore[arg-type]
        server.start()
        return server, server.port, server.intake_port, "two listeners, limits"
    except ImportError:
        server = HealthServer(node, "127.0.0.1", 0)  # type: ignore[arg-type]
        server.start()
        return server, server.port, server.port, "one listener, no limits (before)"


# -- raw HTTP over asyncio ---------------------------------------------------------------


async def request(port: int, raw: bytes, source: str = "127.0.0.1") -> tuple[int, float]:
    """(status, seconds) of one request on a new connection from ``source``."""
    started = time.perf_counter()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), OP_TIMEOUT_S
    )
    try:
        writer.write(raw)
        line = await asyncio.wait_for(reader.readline(), OP_TIMEOUT_S)
        await asyncio.wait_for(reader.read(), OP_TIMEOUT_S)  # Connection: close
        status = int(line.split()[1]) if line else 0
    finally:
        writer.close()
    return status, time.perf_counter() - started


def http(method: str, path: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- slowloris ----------------------------------------------------------------------------


@dataclass
class Slow:
    opened: int = 0
    refused: int = 0  # answered 503 at once
    open_failed: int = 0
    closed_by_server: list[float] = field(default_factory=list)  # seconds after connecting


async def slow_connection(port: int, hold_s: float, result: Slow) -> None:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), OP_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        result.open_failed += 1
        return
    result.opened += 1
    try:
        writer.write(b"POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        try:
            data = await asyncio.wait_for(reader.read(65536), hold_s)
        except TimeoutError:
            return  # still held by the server at the end of the hold
        if data.startswith(b"HTTP/1.1 503"):
            result.refused += 1
        else:
            result.closed_by_server.append(time.monotonic() - started)
    except ConnectionError:
        result.closed_by_server.append(time.monotonic() - started)
    finally:
        writer.close()


async def slowloris(operator_port: int, intake_port: int, count: int, hold_s: float) -> None:
    result = Slow()
    health: list[float] = []
    health_failed = 0
    tasks = [
        asyncio.create_task(slow_connection(intake_port, hold_s, result)) for _ in range(count)
    ]
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline:
        try:
            status, seconds = await request(operator_port, http("GET", "/health"))
            if status == 200:
                health.append(seconds)
            else:
                health_failed += 1
        except (OSError, TimeoutError):
            health_failed += 1
        await asyncio.sleep(0.2)
    await asyncio.gather(*tasks)
    closed = result.closed_by_server
    held = result.opened - result.refused - len(closed)
    print(f"slowloris: {count} connections with half a head, held {hold_s:g}s")
    print(
        f"  opened {result.opened}, could not open {result.open_failed}; refused 503 at the "
        f"cap {result.refused}; closed by the server {len(closed)}"
        + (f" (after {min(closed):.2f}-{max(closed):.2f}s)" if closed else "")
        + f"; still held at the end {held}"
    )
    print(
        f"  /health during the hold: {len(health)} answered 200, {health_failed} failed; "
        f"latency p50 {percentile(health, 50) * 1000:.1f} ms, "
        f"p99 {percentile(health, 99) * 1000:.1f} ms, max {max(health or [0]) * 1000:.1f} ms"
    )


# -- flood ---------------------------------------------------------------------------------


def order_bodies(maker: Keypair, count: int, market: Market) -> list[bytes]:
    bodies = []
    for nonce in range(1, count + 1):
        order = Order(
            market_id=MARKET_ID,
            side=Side.BUY,
            price_atoms=10 * TICK,
            size_atoms=LOT,
            maker=maker.pubkey(),
            pay_account=Keypair().pubkey(),
            receive_account=Keypair().pubkey(),
            client_order_id=nonce,
            expiry_s=int(time.time()) + 3_600,
            nonce=nonce,
        )
        bodies.append(json.dumps(sign_order(order, maker).to_json()).encode())
    return bodies


async def honest_client(port: int, bodies: list[bytes]) -> tuple[list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    for body in bodies:
        status, seconds = await request(port, http("POST", "/orders", body), "127.0.0.3")
        statuses[status] = statuses.get(status, 0) + 1
        latencies.append(seconds)
        await asyncio.sleep(0.125)  # 8 a second: under the default 10/s per maker
    return latencies, statuses


async def flooder(port: int, bodies: list[bytes], stop: asyncio.Event) -> dict[int, int]:
    statuses: dict[int, int] = {}
    queue = list(reversed(bodies))

    async def worker() -> None:
        while queue and not stop.is_set():
            body = queue.pop()
            try:
                status, _ = await request(port, http("POST", "/orders", body), "127.0.0.2")
            except (OSError, TimeoutError):
                status = 0
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(32)))
    return statuses


def share(statuses: dict[int, int], status: int) -> str:
    total = sum(statuses.values())
    return (
        f"{statuses.get(status, 0)}/{total} ({100 * statuses.get(status, 0) / max(total, 1):.0f}%)"
    )


async def flood(intake_port: int, market: Market, flood_count: int, honest_count: int) -> None:
    x, y, y2 = Keypair(), Keypair(), Keypair()
    flood_bodies = order_bodies(x, flood_count, market)
    baseline, base_statuses = await honest_client(
        intake_port, order_bodies(y, honest_count, market)
    )
    stop = asyncio.Event()
    flood_task = asyncio.create_task(flooder(intake_port, flood_bodies, stop))
    await asyncio.sleep(0.5)  # the flood is under way
    during, honest_statuses = await honest_client(
        intake_port, order_bodies(y2, honest_count, market)
    )
    flood_still_running = not flood_task.done()
    stop.set()
    flood_statuses = await flood_task
    print(
        f"flood: client A (127.0.0.2, maker X) sent {sum(flood_statuses.values())} orders on 32 "
        f"connections; client B (127.0.0.3, maker Y) sent {honest_count} at 8/s"
    )
    print(
        f"  A: 429 {share(flood_statuses, 429)}, 201 {share(flood_statuses, 201)}, "
        f"statuses {dict(sorted(flood_statuses.items()))}"
    )
    print(
        f"  B alone:       statuses {base_statuses}; latency p50 "
        f"{percentile(baseline, 50) * 1000:.1f} ms, p99 {percentile(baseline, 99) * 1000:.1f} ms"
    )
    print(
        f"  B during flood: statuses {honest_statuses}; 429 {share(honest_statuses, 429)}; "
        f"latency p50 {percentile(during, 50) * 1000:.1f} ms, "
        f"p99 {percentile(during, 99) * 1000:.1f} ms"
        + ("" if flood_still_running else " (the flood ended before B did)")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--hold-s", type=float, default=6.0)
    parser.add_argument("--flood", type=int, default=10_000)
    parser.add_argument("--honest", type=int, default=40)
    parser.add_argument("--skip", choices=("slowloris", "flood"), default=None)
    args = parser.parse_args()
    if not 1 <= args.connections <= 5000 or not 0 < args.hold_s <= 60:
        parser.error("--connections 1..5000, --hold-s up to 60 (bounded on purpose)")
    if not 1 <= args.flood <= 20_000 or not 1 <= args.honest <= 500:
        parser.error("--flood 1..20000, --honest 1..500 (bounded on purpose)")

    from loguru import logger  # noqa: PLC0415

    logger.remove()
    lines: list[str] = []
    logger.add(lines.append, level="DEBUG")
    with tempfile.TemporaryDirectory() as workdir:
        engine = storage.open_engine(storage.sqlite_url(Path(workdir) / "bench.db"))
        storage.upgrade(engine)
        market = Market(
            market_id=MARKET_ID,
            base_mint=Keypair().pubkey(),
            base_decimals=6,
            quote_mint=Keypair().pubkey(),
            quote_decimals=6,
            lot_size_atoms=LOT,
            tick_size_atoms=TICK,
            settlement_authority=Keypair().pubkey(),
            fee_payer=Keypair().pubkey(),
        )
        storage.insert_market(engine, market)
        server, operator_port, intake_port, shape = start_server(OrderIntake(engine, rpc=None))
        print(f"server: {shape}; operator :{operator_port}, intake :{intake_port}")
        try:
            if args.skip != "slowloris":
                asyncio.run(slowloris(operator_port, intake_port, args.connections, args.hold_s))
            if args.skip != "flood":
                asyncio.run(flood(intake_port, market, args.flood, args.honest))
        finally:
            server.stop()
            engine.dispose()
    errors = sum(1 for line in lines if "| ERROR" in line or "Traceback" in line)
    print(
        f"log: {len(lines)} lines, {sum(len(line) for line in lines)} bytes, "
        f"{errors} ERROR lines or tracebacks"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
