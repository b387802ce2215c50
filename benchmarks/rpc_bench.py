"""RPC failover benchmark: prints figures side by side, asserts nothing.

The same fault script against three clients, each on a fresh localnet of
3 endpoints (slots every 400 ms):

  * crank-node's RpcRouter (actors.rpc), default configuration;
  * the PyPI package solana-rpc-resilient (``pip install '.[bench]'``), its
    rate limiter opened wide so that it does not throttle the run, breaker
    threshold and recovery set like the router's (5 failures, 30 s);
  * a plain solana-py AsyncClient on the first endpoint.

Script: 2,000 ``getLatestBlockhash`` reads (confirmed), issued open-loop at a
fixed rate; endpoint 1 goes down for 10 s (from 3 s in) then recovers;
endpoint 2 answers HTTP 429 to 20% of calls throughout. Every read is given
up at 10 s. Latency is from issue to answer (success or failure); "p99 ok"
counts successful reads only. Run:

    python3 benchmarks/rpc_bench.py [--reads 2000] [--rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.rpc import RpcClient, RpcRouter, RpcRouterConfig, RpcSuccess
from localnet import FaultError, Faults, LocalnetConfig, LocalnetServer
from supervision import ActorHandle, launch

GIVE_UP_S = 10.0
OUTAGE_START_S = 3.0
OUTAGE_S = 10.0
RATE_LIMITED_SHARE = 0.2
PARAMS = [{"commitment": "confirmed"}]

Read = Callable[[], Awaitable[bool]]  # one read; True if it succeeded


@dataclass
class Figures:
    client: str
    successes: int
    reads: int
    latencies_s: list[float]
    ok_latencies_s: list[float]

    def row(self) -> str:
        rate = self.successes / self.reads
        return (
            f"{self.client:<34} {self.successes:>5}/{self.reads:<5} {rate:>8.2%} "
            f"{_ms(self.latencies_s, 50):>8} {_ms(self.latencies_s, 99):>8} "
            f"{_ms(self.ok_latencies_s, 99):>10}"
        )


def _ms(values: list[float], percentile: int) -> str:
    if len(values) < 2:
        return "-"
    return f"{statistics.quantiles(values, n=100)[percentile - 1] * 1000:.1f}"


async def run_script(
    localnet: LocalnetServer, read: Read, reads: int, rate: float
) -> tuple[int, int, list[float], list[float]]:
    """Issue ``reads`` reads at ``rate`` per second while the faults play out."""
    localnet.set_faults(1, Faults(error_rate=RATE_LIMITED_SHARE, error=FaultError.HTTP_429))
    latencies: list[float] = []
    ok_latencies: list[float] = []

    async def one() -> bool:
        started = time.perf_counter()
        try:
            ok = await asyncio.wait_for(read(), GIVE_UP_S)
        except Exception:  # noqa: BLE001  (any failure of a client is a failed read)
            ok = False
        elapsed = time.perf_counter() - started
        latencies.append(elapsed)
        if ok:
            ok_latencies.append(elapsed)
        return ok

    async def faults() -> None:
        await asyncio.sleep(OUTAGE_START_S)
        await asyncio.to_thread(localnet.set_faults, 0, Faults(down=True))
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(localnet.set_faults, 0, Faults())

    script = asyncio.create_task(faults())
    start = time.perf_counter()
    tasks = []
    for index in range(reads):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    results = await asyncio.gather(*tasks)
    await script
    return sum(results), reads, latencies, ok_latencies


async def bench_router(localnet: LocalnetServer, reads: int, rate: float) -> Figures:
    config = RpcRouterConfig.from_urls(localnet.urls, default_deadline_s=GIVE_UP_S)
    router = RpcRouter(config)
    launch(router)
    handle = ActorHandle("rpc-router")
    handle.attach(router.actor_inbox)
    client = RpcClient(handle)
    loop = asyncio.get_running_loop()

    async def read() -> bool:
        answer: asyncio.Future[Any] = loop.create_future()

        def reply(outcome: Any) -> None:
            loop.call_soon_threadsafe(_settle, answer, outcome)

        client.call("getLatestBlockhash", PARAMS, reply)
        return isinstance(await answer, RpcSuccess)

    try:
        return Figures("RpcRouter (crank-node)", *await run_script(localnet, read, reads, rate))
    finally:
        router.actor_ref.stop()


def _settle(answer: asyncio.Future[Any], outcome: Any) -> None:
    if not answer.done():
        answer.set_result(outcome)


async def bench_resilient(localnet: LocalnetServer, reads: int, rate: float) -> Figures | str:
    try:
        from importlib.metadata import version  # noqa: PLC0415  (only when the extra is there)

        from solana_rpc_resilient import ResilientRPCClient  # noqa: PLC0415
    except ImportError:
        return "solana-rpc-resilient is not installed: pip install '.[bench]'"
    providers = [
        {"name": f"endpoint-{index + 1}", "url": url, "weight": 1}
        for index, url in enumerate(localnet.urls)
    ]
    client = ResilientRPCClient(
        providers, rate_limit=100_000.0, burst=100_000.0, failure_threshold=5, recovery_seconds=30.0
    )

    async def read() -> bool:
        return bool((await client.rpc_request("getLatestBlockhash", PARAMS)).is_ok)

    async with client:
        figures = await run_script(localnet, read, reads, rate)
    return Figures(f"solana-rpc-resilient {version('solana-rpc-resilient')}", *figures)


async def bench_plain(localnet: LocalnetServer, reads: int, rate: float) -> Figures:
    from solana.rpc.async_api import AsyncClient  # noqa: PLC0415  (heavy import, only here)
    from solana.rpc.commitment import Confirmed  # noqa: PLC0415

    client = AsyncClient(localnet.urls[0], timeout=GIVE_UP_S)

    async def read() -> bool:
        await client.get_latest_blockhash(Confirmed)
        return True

    try:
        return Figures(
            "solana-py AsyncClient (endpoint 1)", *await run_script(localnet, read, reads, rate)
        )
    finally:
        await client.close()


def on_fresh_localnet(
    bench: Callable[[LocalnetServer, int, float], Coroutine[Any, Any, Figures | str]],
    reads: int,
    rate: float,
) -> Figures | str:
    with LocalnetServer(LocalnetConfig(port=0, endpoints=3, slot_ms=400)) as localnet:
        localnet.advance_slots(64)
        return asyncio.run(bench(localnet, reads, rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0, help="reads issued per second")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    logging.getLogger("solana_rpc_resilient").setLevel(logging.ERROR)  # a line per 429 otherwise
    print(f"{args.reads} getLatestBlockhash reads at {args.rate:g}/s over 3 localnet endpoints")
    print(
        f"faults: endpoint 1 down from {OUTAGE_START_S:g}s to {OUTAGE_START_S + OUTAGE_S:g}s; "
        f"endpoint 2 answers 429 to {RATE_LIMITED_SHARE:.0%} of calls; reads give up at "
        f"{GIVE_UP_S:g}s"
    )
    rows = [
        on_fresh_localnet(bench, args.reads, args.rate)
        for bench in (bench_router, bench_resilient, bench_plain)
    ]
    print(
        f"{'client':<34} {'ok/reads':>11} {'success':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'p99 ok ms':>10}"
    )
    for row in rows:
        print(row.row() if isinstance(row, Figures) else f"{'(skipped)':<34} {row}")


if __name__ == "__main__":
    main()
