"""The live stream with clients that never read: are they dropped, and does the node
stay as fast for everyone else?

    python3 benchmarks/stream_slow_client_bench.py [--orders 200] [--stuck 20] [--buffer 16]

A real HealthServer over a real OrderIntake on a temporary SQLite file (one market, no
chain checks). Phase 1: ``--orders`` signed buys, each at a new price (so the book and
its events grow), one at a time, each followed by GET of the book; latency p50/p99 of
the POSTs. Phase 2: ``--stuck`` clients open GET /stream?market_id= with a tiny receive
buffer and never read; the same load again (each book change is an event for each of
them). Phase 3: the stuck clients gone, the same load once more. The book is bigger in
each phase, so phase 2 is to be read between 1 and 3. Prints the three phases' POST
latencies, how many stuck clients were dropped with a stream buffer of ``--buffer``
events, and the last event one of them received.

Bounded: at most 2000 orders a phase and 200 stuck clients, 127.0.0.1 only. Asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_abuse_bench import (
    LOT,
    MARKET_ID,
    TICK,
    StandInNode,
    http,
    percentile,
    request,
)
from solders.keypair import Keypair

import storage
from crank_node.node.health import HealthServer
from crank_node.node.intake import OrderIntake
from crank_node.node.intake_http import IntakeLimits
from crank_node.node.intake_stream import StreamLimits
from market import Market, Order, Side, sign_order


def order_bodies(maker: Keypair, count: int) -> list[bytes]:
    """Buys at ``count`` different prices: the book grows a level with each, so each
    book event is larger than the last (what makes a stuck client's buffers fill)."""
    bodies = []
    for nonce in range(1, count + 1):
        order = Order(
            market_id=MARKET_ID,
            side=Side.BUY,
            price_atoms=nonce * TICK,
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


async def load(port: int, bodies: list[bytes]) -> list[float]:
    latencies = []
    for body in bodies:
        status, seconds = await request(port, http("POST", "/orders", body))
        assert status == 201, status
        latencies.append(seconds)
        await request(port, http("GET", f"/markets/{MARKET_ID}/book"))
    return latencies


def stuck_client(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /stream?market_id={MARKET_ID} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--stuck", type=int, default=20)
    parser.add_argument("--buffer", type=int, default=16)
    args = parser.parse_args()
    if not 1 <= args.orders <= 2000 or not 1 <= args.stuck <= 200:
        parser.error("--orders 1..2000, --stuck 1..200 (bounded on purpose)")
    from loguru import logger  # noqa: PLC0415

    logger.remove()
    with tempfile.TemporaryDirectory() as workdir:
        engine = storage.open_engine(storage.sqlite_url(Path(workdir) / "bench.db"))
        storage.upgrade(engine)
        storage.insert_market(
            engine,
            Market(
                market_id=MARKET_ID,
                base_mint=Keypair().pubkey(),
                base_decimals=6,
                quote_mint=Keypair().pubkey(),
                quote_decimals=6,
                lot_size_atoms=LOT,
                tick_size_atoms=TICK,
                settlement_authority=Keypair().pubkey(),
                fee_payer=Keypair().pubkey(),
            ),
        )
        limits = IntakeLimits(
            client_rate_per_s=1e6,
            client_burst=10**6,
            maker_rate_per_s=1e6,
            maker_burst=10**6,
            stream=StreamLimits(buffer_events=args.buffer),
        )
        server = HealthServer(
            StandInNode(OrderIntake(engine, rpc=None)),
            "127.0.0.1",
            0,  # type: ignore[arg-type]
            intake_limits=limits,
        )
        server.start()
        port = server.intake_port
        try:
            bodies = order_bodies(Keypair(), 3 * args.orders)
            baseline = asyncio.run(load(port, bodies[: args.orders]))
            stuck = [stuck_client(port) for _ in range(args.stuck)]
            started = time.monotonic()
            loaded = asyncio.run(load(port, bodies[args.orders : 2 * args.orders]))
            elapsed_s = time.monotonic() - started
            counters = server.intake.events.snapshot()
            stuck[0].settimeout(5)
            tail = b""
            try:
                while chunk := stuck[0].recv(65536):
                    tail = (tail + chunk)[-600:]
            except TimeoutError:
                pass
            for sock in stuck:
                sock.close()
            after = asyncio.run(load(port, bodies[2 * args.orders :]))
        finally:
            server.stop()
            engine.dispose()
    phases = (
        ("1 baseline", baseline),
        (f"2 with {args.stuck} stuck streams", loaded),
        ("3 after (no streams, a bigger book)", after),
    )
    for name, values in phases:
        print(
            f"POST /orders {name}: n={len(values)} p50={percentile(values, 50) * 1e3:.1f} ms "
            f"p99={percentile(values, 99) * 1e3:.1f} ms"
        )
    print(
        f"phase 2 took {elapsed_s:.1f}s; streams opened {counters.get('streams_opened', 0)}, "
        f"dropped as slow {counters.get('streams_dropped_slow', 0)} (buffer {args.buffer})"
    )
    reason = tail.decode("utf-8", "replace").rsplit("event: dropped", 1)
    print(
        "a stuck client's last event:",
        ("dropped" + reason[1].strip()[:200]) if len(reason) == 2 else "(none read)",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
