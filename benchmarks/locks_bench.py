"""Lease-lock throughput: crank-node's storage on SQLite and PostgreSQL, next to Redis.

    python3 benchmarks/locks_bench.py [--seconds 2] [--processes 1,4]

Two workloads, each run by 1 and 4 processes for a fixed time:

* acquire+release cycles per second: each process cycles through 50 keys of
  its own (no contention: this measures the cost of a lease, not a fight);
* fenced writes per second: each process holds one lease and repeatedly
  updates a row of its own, the write checking the fencing token in the same
  statement (one write per transaction).

The reference is redis-py's ``Lock`` on the Redis server at 127.0.0.1:6379:
``acquire(blocking=False)`` + ``release()``, and for fenced writes a Lua
script that checks the lock's token and writes in one atomic step (Redis'
nearest equivalent of a same-statement fence; its lock has no fencing token).
Every figure is also given as a ratio to Redis' for the same workload and
process count. Prints figures only; nothing here asserts on time.

``pg-nosync`` is PostgreSQL with ``synchronous_commit=off``, shown only to
tell the WAL flush's share of a commit apart from the rest. It is NOT a
setting for crank-node: a server crash could lose a committed fencing-token
bump and hand the same token out twice.

PostgreSQL: ``--pg-url``, else ``CRANK_BENCH_PG_URL``, else ``CRANK_TEST_PG_URL``,
else ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; the run uses a
schema of its own and drops it afterwards. Redis keys are prefixed and deleted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import psycopg
import redis
from loguru import logger
from sqlalchemy import Column, Integer, MetaData, String, Table, update
from sqlalchemy.engine import make_url

from storage import LeaseStore, open_engine, sqlite_url, upgrade, write_transaction

KEYS_PER_PROCESS = 50
TTL_S = 30.0
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

BENCH = MetaData()
CELLS = Table(
    "bench_cells",
    BENCH,
    Column("key", String(200), primary_key=True),
    Column("writes", Integer, nullable=False),
)

FENCED_INCR = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('INCR', KEYS[2])
end
return 0
"""


@dataclass(frozen=True)
class Job:
    backend: str  # "sqlite", "postgresql", "pg-nosync" or "redis"
    workload: str  # "cycles" or "fenced"
    target: str  # database URL or Redis URL
    prefix: str  # key prefix for this run
    seconds: float


def _keys(job: Job, worker: int) -> list[str]:
    return [f"{job.prefix}w{worker}:k{index}" for index in range(KEYS_PER_PROCESS)]


def _timed(seconds: float, operation: Callable[[], None]) -> tuple[int, float]:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        operation()
        count += 1
    return count, time.perf_counter() - start


def _storage_operation(job: Job, worker: int) -> tuple[Callable[[], None], Callable[[], None]]:
    engine = open_engine(job.target, busy_timeout_ms=60_000)
    store = LeaseStore(engine, f"bench-{worker}")
    keys = _keys(job, worker)
    if job.workload == "cycles":
        position = iter(range(1 << 62))

        def cycle() -> None:
            lease = store.acquire(keys[next(position) % len(keys)], TTL_S)
            assert lease is not None
            store.release(lease)

        return cycle, engine.dispose
    lease = store.acquire(keys[0], TTL_S)
    assert lease is not None
    bump = update(CELLS).where(CELLS.c.key == keys[0]).values(writes=CELLS.c.writes + 1)

    def fenced() -> None:
        with store.fenced(lease) as fence:
            fence.execute(bump)

    return fenced, engine.dispose


def _redis_operation(job: Job, worker: int) -> tuple[Callable[[], None], Callable[[], None]]:
    client = redis.Redis.from_url(job.target)
    keys = _keys(job, worker)
    if job.workload == "cycles":
        position = iter(range(1 << 62))

        def cycle() -> None:
            lock = client.lock(keys[next(position) % len(keys)], timeout=TTL_S)
            assert lock.acquire(blocking=False)
            lock.release()

        return cycle, client.close
    lock = client.lock(keys[0], timeout=TTL_S)
    assert lock.acquire(blocking=False)
    token = lock.local.token
    script = client.register_script(FENCED_INCR)

    def fenced() -> None:
        assert script(keys=[keys[0], keys[0] + ":cell"], args=[token])

    return fenced, client.close


def _worker(job: Job, worker: int, barrier: Barrier, results: Any) -> None:
    logger.remove()  # DEBUG lines per lease would measure the logger
    make = _redis_operation if job.backend == "redis" else _storage_operation
    operation, close = make(job, worker)
    operation()  # warm up: connection, statement cache
    barrier.wait()
    results.put(_timed(job.seconds, operation))
    close()


def _run(job: Job, processes: int) -> float:
    """Operations per second, summed over ``processes`` processes."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_worker, args=(job, index, barrier, results))
        for index in range(processes)
    ]
    for process in workers:
        process.start()
    measured: list[tuple[int, float]] = [results.get(timeout=120) for _ in workers]
    rates = [count / elapsed for count, elapsed in measured]
    for process in workers:
        process.join(timeout=60)
    return sum(rates)


def _prepare_database(url: str, processes: int, prefix: str) -> None:
    engine = open_engine(url)
    try:
        upgrade(engine)
        BENCH.create_all(engine)
        with write_transaction(engine) as connection:
            rows = [{"key": f"{prefix}w{worker}:k0", "writes": 0} for worker in range(processes)]
            connection.execute(CELLS.insert(), rows)
    finally:
        engine.dispose()


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_schema(url: str, schema: str, more_options: str = "") -> str:
    options = f"-csearch_path={schema}{more_options}"
    return (
        make_url(url).update_query_dict({"options": options}).render_as_string(hide_password=False)
    )


def _measure(backend: str, target: str, processes: int, seconds: float) -> dict[str, float]:
    prefix = f"crank_bench:{uuid.uuid4().hex[:8]}:"
    if backend != "redis":
        _prepare_database(target, processes, prefix)
    rates = {
        workload: _run(Job(backend, workload, target, prefix, seconds), processes)
        for workload in ("cycles", "fenced")
    }
    if backend == "redis":
        client = redis.Redis.from_url(target)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()
    return rates


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--processes", default="1,4", help="process counts, comma-separated")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CRANK_BENCH_PG_URL")
        or os.environ.get("CRANK_TEST_PG_URL")
        or DEFAULT_PG_URL,
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args()


def _report(results: dict[tuple[str, int], dict[str, float]], process_counts: list[int]) -> None:
    titles = {"cycles": "acquire+release cycles/s", "fenced": "fenced writes/s"}
    for workload, title in titles.items():
        print(f"\n{title}")
        print(f"  {'backend':<11}{'procs':>6}{'ops/s':>12}{'vs redis':>10}")
        for processes in process_counts:
            reference = results[("redis", processes)][workload]
            for backend in ("sqlite", "postgresql", "pg-nosync", "redis"):
                rate = results[(backend, processes)][workload]
                print(f"  {backend:<11}{processes:>6}{rate:>12,.0f}{rate / reference:>10.3f}")


def main() -> None:
    args = _arguments()
    logger.remove()  # the figures are the output
    process_counts = [int(part) for part in args.processes.split(",")]
    schema = f"crank_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(args.pg_url), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        server = admin.execute("SHOW server_version").fetchone()
    redis_info = redis.Redis.from_url(args.redis_url)
    redis_version = redis_info.info("server")["redis_version"]
    redis_info.close()
    print(
        f"crank-node lease benchmark: {args.seconds:g}s per figure, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, PostgreSQL {server[0] if server else '?'}, "
        f"Redis {redis_version}, redis-py {redis.__version__}"
    )
    results: dict[tuple[str, int], dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for processes in process_counts:
                sqlite_target = sqlite_url(Path(folder) / f"bench-{processes}.db")
                targets = {
                    "sqlite": sqlite_target,
                    "postgresql": _with_schema(args.pg_url, schema),
                    "pg-nosync": _with_schema(args.pg_url, schema, " -csynchronous_commit=off"),
                    "redis": args.redis_url,
                }
                for backend, target in targets.items():
                    results[(backend, processes)] = _measure(
                        backend, target, processes, args.seconds
                    )
    finally:
        with psycopg.connect(_libpq(args.pg_url), autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    _report(results, process_counts)


if __name__ == "__main__":
    main()
