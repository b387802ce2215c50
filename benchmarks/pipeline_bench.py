"""Fills confirmed per second and fill-to-confirmed latency: one crank node on localnet and SQLite.

    python3 benchmarks/pipeline_bench.py [--slot-ms 400] [--burst 3000] [--rate 300 50]
        [--duration 20] [--naive 15] [--reference 3000] [--profile py-spy|cprofile]
        [--db sqlite|postgresql] [--pg-url URL]

One run measures, one after the other, on the same machine (about 2.5 minutes
with the defaults):

1. **localnet alone**, with ``benchmarks/localnet_bench.py``'s pieces (its
   server process, fixtures and settlement-shaped transactions): ``--reference``
   transactions sent over HTTP and counted when ``getSignatureStatuses`` says
   ``confirmed``, in two shapes. One ``sendTransaction`` per request, preflight
   skipped, 64 in flight, from an aiohttp client: the node's own request shape
   (its RpcRouter posts one request per transaction, skipPreflight, over aiohttp
   with 64 connections), and the rate the targets compare with. For context,
   localnet_bench's solana-py variant (``send_raw_transaction`` with preflight,
   64 in flight) and its JSON-RPC batches of 100 (skipPreflight, 4 in flight),
   the most localnet takes over HTTP. The first shape's transactions
   then run in a LiteSVM in this process: localnet's in-process capacity.
2. **A naive crank** against the pipeline's localnet: per fill, solana-py's
   ``get_latest_blockhash``, ``market.build_settlement_transaction``,
   ``send_transaction`` (preflight on) and ``confirm_transaction`` (commitment
   confirmed, its default 0.5 s polling), one fill at a time, as most
   hand-written cranks do. Next to it, the chain's own floor: the same loop
   from a lean client polling ``getSignatureStatuses`` every 10 ms.
3. **The crank node** (``crank_node.node.node.Node`` in this process, as ``crank-node run``
   runs it; intake's ``storage.store_order`` in this process too) on a fresh
   SQLite file (or, with ``--db postgresql``, a new schema) per phase, with one
   wallet that is both fee payer and settlement authority:

   - *burst*: ``--burst`` crossing pairs stored before the node starts: its
     capacity (fills per second from the first fill written to the last
     settlement confirmed);
   - *steady*, once per ``--rate``: a feeder thread stores crossing pairs at
     that many per second for ``--duration`` seconds while the node runs (what
     it cannot store in that time was offered and not taken): the latency at
     that offered rate. The feeder is a thread of this process by default, as
     intake is of `crank-node run`'s (its CPU is subtracted from the node's, but
     it shares the GIL: on PostgreSQL it cannot store 300 pairs/s beside the
     node); ``--feeder process`` runs it in a process of its own.

   Each phase then waits (at most ``--drain-s``) until every stored pair's
   settlement is confirmed, stops the node with its phased shutdown, and
   reconciles every maker's balance on chain with the database's fills
   (``crank_node.harness.scenario.reconcile``).

**Where localnet runs.** In a process of its own (``spawn``), as in
localnet_bench, so the node and the chain do not share one GIL. The scenario
(``crank_node.harness.scenario.build_scenario``: two markets, four makers, generously
funded and delegated) needs the server's in-process fixtures, and localnet's
admin HTTP routes only do faults and slots, so the child builds it right after
starting the server and sends back what the parent needs: the markets (JSON),
the makers' keypairs (their 64 bytes) and token accounts. The wallet is made
here and handed over the same way. The parent rebuilds the
:class:`~crank_node.harness.scenario.Scenario` and reads balances over JSON-RPC.

**Orders.** Hand-made crossing pairs rather than ``OrderFlow``'s random stream,
so that every pair is exactly one fill and the count is known: one lot each,
every order of a market at the same price, sells from the first half of the
makers and buys from the second half (no self-trade to skip), markets and makers
taken in turn.

**Database work**: the node's statements, transactions and (on PostgreSQL)
round trips per settled fill, counted by SQLAlchemy engine events
(:class:`StatementCount`) from start to stop.

**Latency** is read from the database afterwards, on SQLite's one clock (the
host's, millisecond resolution): a settlement's ``created_at`` (written in the
same transaction as its fill) to the ``created_at`` of its ``confirmed``
``transaction_history`` row. ``Finished.fill_age_s`` says about the same on the
node's clock, and is not used. Steady phases also give order-to-confirmed: the
taker order's ``created_at`` (stored by the feeder) to the same row, which adds
OrderMonitor's polling (``--poll-ms``) and funding check.

**Targets** (issue 20): the fastest phase's fills/s (the burst, normally) at
least 0.8x the one-request-per-transaction HTTP rate and 0.7x the batched rate,
and at least 300; p99 fill-to-confirmed at most 2.5 slot times at 300/s and 2.3
at lower rates; this process's CPU per settled fill at most 0.3 ms in the burst
and 0.5 ms in a steady phase. The chain floor row shows localnet's own share of
the latency: about 2 slots (a transaction lands in the slot after it arrives and
is confirmed one slot later). Below the targets, the CPU floor of a fill
(``benchmarks/fill_floor.py``): what verifying, building, signing, sending and
writing one fill's rows costs with the libraries alone, measured in the same run.

**Logs.** The node's INFO lines go to a file in the run's scratch folder (as a
deployed node's file sink would), errors to stderr; ``--log none`` drops them.
Either way the warnings of each phase are counted by ``action``, with the first
message of each. **Profile** (``--profile``): seconds holding the GIL (py-spy)
or on a CPU (cProfile) per node thread, and each busy thread's top 25
functions by cumulative seconds (see :class:`ThreadProfiles`); a cProfile'd
node runs several times slower, so its figures only say where the time goes.
CPU seconds of this process and of the localnet process are printed for every
phase either way.

The machine has two cores shared by node, localnet and anything else: read the
ratios, which compare runs made moments apart. It prints figures and never
asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import functools
import gc
import io
import multiprocessing
import os
import pstats
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

# Run from a checkout like bin/crank-node: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import httpx2
from loguru import logger
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import ExecuteStyle

import storage
from actors.settlement import AttemptsExpired, Finished
from benchmarks import fill_floor
from benchmarks.localnet_bench import (
    ServerProcess,
    fetch_state,
    in_process,
    market_from,
    over_http_batches,
    over_http_solana_py,
    settlement,
    wait_confirmed,
)
from crank_node.harness.scenario import Scenario, build_scenario, reconcile
from crank_node.node.node import Node
from crank_node.node.settings import CrankSettings
from localnet import LocalnetConfig, LocalnetServer
from market import (
    Fill,
    Market,
    Order,
    Side,
    SignedOrder,
    build_settlement_transaction,
    sign_market,
    sign_order,
)
from storage.models import Fill as FillRow
from storage.models import Order as OrderRow
from storage.models import Settlement, SettlementAttempt, TransactionHistory, table_of

try:
    from storage.engine import PIPELINE_MIN_ROWS
except ImportError:  # a checkout from before it (measuring a "before"): every row, one by one
    PIPELINE_MIN_ROWS = sys.maxsize
try:
    from crank_node.node.gc_tuning import tune_garbage_collector
except ImportError:  # a checkout from before it: `crank-node run` left Python's thresholds

    def tune_garbage_collector() -> tuple[int, int, int]:
        return gc.get_threshold()  # type: ignore[return-value]


from supervision.logs import configure_logging
from supervision.shutdown import ShutdownCoordinator

MARKETS, MAKERS = 2, 4
FUNDING_ATOMS = 10**15  # per maker and mint: a fill moves 10^4 base and ~10^4 quote atoms
PRICE_TICKS = 1_000  # every order of a market at this price: each pair is one fill
IN_FLIGHT = 64  # the node's aiohttp transport opens 64 connections per host
START_TIMEOUT_S = 60.0
CHAIN_POLL_S = 0.010  # the chain floor's status polling
NAIVE = "naive: solana-py send_transaction + confirm_transaction"
FLOOR = "chain floor: one at a time, statuses every 10 ms"
_FILLS, _ORDERS = table_of(FillRow), table_of(OrderRow)
_SETTLEMENTS, _ATTEMPTS = table_of(Settlement), table_of(SettlementAttempt)
_HISTORY = table_of(TransactionHistory)


# -- the pipeline's localnet, in a process of its own ----------------------------------------


def serve_scenario(slot_ms: int, wallet_secret: bytes, seed: int, ready: Any, stop: Any) -> None:
    """The chain process (spawned): a localnet with the scenario built on it, until told to stop."""
    logger.remove()  # one log line per landed transaction would measure the terminal
    wallet = Keypair.from_bytes(wallet_secret)
    with LocalnetServer(LocalnetConfig(port=0, slot_ms=slot_ms)) as localnet:
        scenario = build_scenario(
            localnet,
            None,
            markets=MARKETS,
            makers=MAKERS,
            settlement_authority=wallet,
            fee_payer=wallet,
            base_atoms_per_maker=FUNDING_ATOMS,
            quote_atoms_per_maker=FUNDING_ATOMS,
            seed=seed,
        )
        ready.send(
            {
                "url": localnet.url,
                "markets": [market.to_json() for market in scenario.markets],
                "makers": [bytes(maker) for maker in scenario.makers],
                "accounts": [
                    (str(maker), str(mint), str(address))
                    for (maker, mint), address in scenario.accounts.items()
                ],
            }
        )
        stop.wait()


class ChainProcess:
    """localnet_bench's ServerProcess, for :func:`serve_scenario`: the scenario comes back."""

    def __init__(self, slot_ms: int, wallet: Keypair, seed: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        receiving, sending = context.Pipe(duplex=False)
        self._process = context.Process(
            target=serve_scenario, args=(slot_ms, bytes(wallet), seed, sending, self._stop)
        )
        self._process.start()
        if not receiving.poll(START_TIMEOUT_S):
            self.close()
            raise SystemExit(f"the localnet process did not start within {START_TIMEOUT_S} s")
        report: dict[str, Any] = receiving.recv()
        receiving.close()
        sending.close()
        self.url: str = report["url"]
        self.scenario = Scenario(
            # JSON carries no signature: the authority (this wallet) signs each definition.
            markets=tuple(
                _signed_market(Market.from_json(document), wallet) for document in report["markets"]
            ),
            makers=tuple(Keypair.from_bytes(secret) for secret in report["makers"]),
            settlement_authority=wallet,
            fee_payer=wallet,
            accounts={
                (Pubkey.from_string(maker), Pubkey.from_string(mint)): Pubkey.from_string(address)
                for maker, mint, address in report["accounts"]
            },
            base_atoms_per_maker=FUNDING_ATOMS,
            quote_atoms_per_maker=FUNDING_ATOMS,
            seed=seed,
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def close(self) -> None:
        self._stop.set()
        self._process.join(30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


# -- orders ------------------------------------------------------------------------------------


class Pair(NamedTuple):
    """A sell then a buy that cross: one fill of one lot."""

    sell: SignedOrder
    buy: SignedOrder


def _signed_market(market: Market, authority: Keypair) -> Market:
    return replace(market, definition_signature=sign_market(market, authority))


def crossing_pairs(scenario: Scenario, count: int, first_id: int) -> list[Pair]:
    """``count`` pairs, markets and makers in turn; ``first_id`` numbers the first
    (client order id and nonce), so that phases never reuse one."""
    half = len(scenario.makers) // 2
    sellers, buyers = scenario.makers[:half], scenario.makers[half:]
    expiry_s = int(time.time()) + 3600
    pairs = []
    for k in range(count):
        market = scenario.markets[k % len(scenario.markets)]
        turn = k // len(scenario.markets)
        seller, buyer = sellers[turn % len(sellers)], buyers[turn % len(buyers)]
        number = first_id + k
        pairs.append(
            Pair(
                _signed(scenario, market, Side.SELL, seller, number=number, expiry_s=expiry_s),
                _signed(scenario, market, Side.BUY, buyer, number=number, expiry_s=expiry_s),
            )
        )
    return pairs


def _signed(
    scenario: Scenario, market: Market, side: Side, maker: Keypair, *, number: int, expiry_s: int
) -> SignedOrder:
    """One lot at the market's one price; a sell pays base, a buy pays quote."""
    pay, receive = market.base_mint, market.quote_mint
    if side is Side.BUY:
        pay, receive = receive, pay
    owner = maker.pubkey()
    terms = Order(
        market_id=market.market_id,
        side=side,
        price_atoms=PRICE_TICKS * market.tick_size_atoms,
        size_atoms=market.lot_size_atoms,
        maker=owner,
        pay_account=scenario.token_account(owner, pay),
        receive_account=scenario.token_account(owner, receive),
        client_order_id=number,
        expiry_s=expiry_s,
        nonce=number,
    )
    return sign_order(terms, maker)


def fill_of(scenario: Scenario, pair: Pair, sequence: int) -> Fill:
    """The fill a node would make of ``pair`` (the sell resting, the buy taking)."""
    market = scenario.market(pair.sell.order.market_id)
    lot = market.lot_size_atoms
    return Fill.between(market, sequence, pair.sell.order, pair.buy.order, lot)


# -- figures -----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the final table."""

    name: str
    count: int
    elapsed_s: float
    latencies_s: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s > 0 else 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 100 values is the 99th)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5 - 1e-9)))
    return ordered[rank - 1]


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc), else None."""
    if pid is None:
        return None
    return _stat_cpu_s(Path(f"/proc/{pid}/stat"))


def _stat_fields(stat: Path) -> tuple[str, list[str]] | None:
    """A /proc stat file's command name and its fields from the third (state) on, so that
    ``[11]``, ``[12]`` are utime, stime and ``[13]``, ``[14]`` cutime, cstime (in clock
    ticks); None if it is gone."""
    try:
        head, rest = stat.read_text().rsplit(")", 1)
    except (OSError, ValueError):
        return None
    return head.split("(", 1)[-1], rest.split()


def _stat_cpu_s(stat: Path) -> float | None:
    """utime + stime of a /proc stat file (a process's or a thread's), in seconds."""
    read = _stat_fields(stat)
    if read is None:
        return None
    fields = read[1]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(name: str = "postgres", tries: int = 50) -> float | None:
    """User + system CPU seconds so far of the local database server: every live process
    called ``name`` and, through its parent's cutime and cstime, those already gone (a
    backend's CPU is added to the postmaster's when it is reaped); None if none runs, or
    if processes kept coming and going through ``tries`` readings of /proc.

    A backend reaped while /proc is read is counted nowhere (its stat gone, its parent's
    read before the reap) or twice (its stat read, then its parent's after the reap).
    A phase's last reading comes as the node's connections close: one PostgreSQL burst
    printed 0.0 s. So the figure is a reading whose neighbours list the same processes
    (:func:`steady_reading`)."""
    readings = (_ticks_named(name) for _ in range(tries))
    ticks = steady_reading(readings)
    return sum(ticks.values()) / os.sysconf("SC_CLK_TCK") if ticks else None


def _ticks_named(name: str) -> dict[int, int]:
    """utime + stime + cutime + cstime of each live process called ``name``, by pid."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        read = _stat_fields(stat)
        if read is not None and read[0] == name:  # None: gone since the listing
            ticks[int(stat.parent.name)] = sum(int(tick) for tick in read[1][11:15])
    return ticks


def steady_reading(readings: Iterator[dict[int, int]]) -> dict[int, int] | None:
    """The first reading of ``readings`` (ticks by pid) whose previous and next readings
    hold the same pids, so that no process came or went while it was read; None if the
    readings run out first. A process reaped during reading k is in reading k-1 (or
    was spawned during it) and not in reading k+1."""
    before: dict[int, int] | None = None
    current: dict[int, int] | None = None
    for reading in readings:
        if (
            before is not None
            and current is not None
            and before.keys() == current.keys() == reading.keys()
        ):
            return current
        before, current = current, reading
    return None


def others_cpu_s(chain_pid: int | None, on_server: bool) -> tuple[float | None, float | None]:
    """CPU seconds so far of the localnet process and (``on_server``) of the database server."""
    return process_cpu_s(chain_pid), server_cpu_s() if on_server else None


def _spent(now: float | None, then: float | None) -> float | None:
    """CPU seconds between two readings, None if either could not be read."""
    return None if now is None or then is None else now - then


def thread_cpu_s() -> dict[str, float]:
    """User + system CPU seconds so far of each live thread of this process, by thread
    name (Linux /proc/self/task; no profiler, so nothing is slowed down to measure)."""
    found: dict[str, float] = {}
    for thread in threading.enumerate():
        seconds = _stat_cpu_s(Path(f"/proc/self/task/{thread.native_id}/stat"))
        if seconds is not None:
            found[thread.name] = found.get(thread.name, 0.0) + seconds
    return found


def thread_cpu_line(before: dict[str, float], after: dict[str, float], fills: int) -> str:
    """The busiest threads' CPU over a phase, in ms per fill."""
    spent = {name: seconds - before.get(name, 0.0) for name, seconds in after.items()}
    busy = sorted(((s, n) for n, s in spent.items() if s >= 0.01), reverse=True)
    per_fill = ", ".join(f"{name} {s * 1000 / max(fills, 1):.2f}" for s, name in busy[:10])
    return f"CPU by thread (/proc, ms per fill): {per_fill}"


# -- localnet alone: HTTP rates and in-process capacity ----------------------------------------


async def over_http_one_per_request(
    url: str, transactions: Sequence[VersionedTransaction], in_flight: int
) -> float:
    """localnet_bench's one-request-per-tx variant with preflight skipped, as the node sends."""
    encoded = [base64.b64encode(bytes(tx)).decode() for tx in transactions]
    config = {"encoding": "base64", "skipPreflight": True}
    gate = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession() as session, httpx2.AsyncClient(timeout=30) as http:

        async def one(transaction: str) -> str:
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "sendTransaction",
                "params": [transaction, config],
            }
            async with gate, session.post(url, json=body) as answer:
                return str((await answer.json())["result"])

        started = time.perf_counter()
        signatures = await asyncio.gather(*(one(transaction) for transaction in encoded))
        await wait_confirmed(http, url, list(signatures))
        return len(transactions) / (time.perf_counter() - started)


class Reference(NamedTuple):
    per_request: Row  # the node's request shape: what the targets compare with
    solana_py: Row
    batches: Row
    in_process: Row


def measure_localnet(slot_ms: int, count: int) -> Reference:
    """localnet_bench's server and transactions: two HTTP shapes, each on fresh
    transactions, then the first one's transactions in-process (LiteSVM) right after."""
    with tempfile.TemporaryDirectory() as scratch:
        keys_dir = Path(scratch)
        server = ServerProcess(slot_ms, keys_dir)
        try:
            url, market = server.report["url"], market_from(server.report, keys_dir)
            _, accounts = asyncio.run(fetch_state(url, market))

            def signed(first: int) -> list[VersionedTransaction]:
                blockhash, _ = asyncio.run(fetch_state(url, market))
                return [settlement(market, fill, blockhash) for fill in range(first, first + count)]

            # Fill ids of their own: a resend of localnet_bench's would be deduplicated.
            transactions = signed(7 * 10**7)
            per_request = asyncio.run(over_http_one_per_request(url, transactions, IN_FLIGHT))
            capacity = in_process(transactions, accounts)
            solana_py = asyncio.run(over_http_solana_py(url, signed(8 * 10**7), IN_FLIGHT))
            batches = asyncio.run(
                over_http_batches(url, signed(9 * 10**7), 100, 4, skip_preflight=True)
            )
        finally:
            server.close()
    return Reference(
        Row("localnet HTTP: 1 tx/request, skipPreflight, 64 in flight", count, count / per_request),
        Row("localnet HTTP: solana-py, preflight, 64 in flight", count, count / solana_py),
        Row("localnet HTTP: batches of 100, skipPreflight, 4 in flight", count, count / batches),
        Row("localnet in-process (LiteSVM, same transactions)", count, count / capacity),
    )


# -- the naive crank and the chain's floor -----------------------------------------------------


async def naive_crank(url: str, scenario: Scenario, fills: Sequence[Fill], name: str) -> Row:
    """One fill at a time: blockhash, build and sign, send (preflight), confirm_transaction."""
    wallet = scenario.settlement_authority
    latencies = []
    async with AsyncClient(url, timeout=30) as rpc:
        started = time.perf_counter()
        for fill in fills:
            begun = time.perf_counter()
            blockhash = (await rpc.get_latest_blockhash(Confirmed)).value.blockhash
            transaction = build_settlement_transaction(
                scenario.market(fill.market_id),
                fill,
                fee_payer=wallet,
                settlement_authority=wallet,
                recent_blockhash=blockhash,
                compute_unit_price_micro_lamports=1_000,
            )
            options = TxOpts(skip_confirmation=True, preflight_commitment=Confirmed)
            signature = (await rpc.send_transaction(transaction.transaction, options)).value
            status = (await rpc.confirm_transaction(signature, Confirmed)).value[0]
            if status is None or status.err is not None:
                raise SystemExit(f"a naive settlement did not land cleanly: {status}")
            latencies.append(time.perf_counter() - begun)
        elapsed = time.perf_counter() - started
    return Row(name, len(fills), elapsed, latencies)


async def chain_floor(url: str, scenario: Scenario, fills: Sequence[Fill], name: str) -> Row:
    """The naive loop with a lean client: statuses polled every 10 ms, no preflight."""
    wallet = scenario.settlement_authority
    latencies = []
    async with httpx2.AsyncClient(timeout=30) as http:

        async def call(method: str, params: list[Any]) -> Any:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            return (await http.post(url, json=body)).json()["result"]

        started = time.perf_counter()
        for fill in fills:
            begun = time.perf_counter()
            latest = await call("getLatestBlockhash", [{"commitment": "confirmed"}])
            transaction = build_settlement_transaction(
                scenario.market(fill.market_id),
                fill,
                fee_payer=wallet,
                settlement_authority=wallet,
                recent_blockhash=Hash.from_string(latest["value"]["blockhash"]),
                compute_unit_price_micro_lamports=1_000,
            )
            raw = base64.b64encode(transaction.raw_bytes).decode()
            config = {"encoding": "base64", "skipPreflight": True}
            signature = await call("sendTransaction", [raw, config])
            await wait_confirmed_one(call, signature)
            latencies.append(time.perf_counter() - begun)
        elapsed = time.perf_counter() - started
    return Row(name, len(fills), elapsed, latencies)


async def wait_confirmed_one(call: Callable[[str, list[Any]], Any], signature: str) -> None:
    while True:
        status = (await call("getSignatureStatuses", [[signature]]))["value"][0]
        if status is not None and status["confirmationStatus"] in ("confirmed", "finalized"):
            if status["err"] is not None:
                raise SystemExit(f"a floor settlement failed: {status['err']}")
            return
        await asyncio.sleep(CHAIN_POLL_S)


# -- profiling ---------------------------------------------------------------------------------


class Entry(NamedTuple):
    """One function in one thread's profile (``calls`` unknown to a sampler)."""

    calls: int | None
    own_s: float
    cumulative_s: float
    where: str


class ThreadProfiles:
    """Seconds per thread of this process, and each busy thread's top functions by
    cumulative seconds, over one phase.

    ``py-spy`` (``pip install py-spy``): ``py-spy record --gil`` attached to this
    process, 100 samples a second of the thread holding the GIL (the process
    is paused for each sample: without the pause, stacks come out truncated).
    The node is one Python process whose threads take turns on the GIL, so
    this says who uses the resource that bounds it; SQLite's and the sockets'
    C code, which runs without the GIL, is not counted. Without ``--gil``,
    py-spy also counts threads waiting on their mailbox or the GIL as busy.
    It slows the node a little. ``cprofile``: one
    ``cProfile.Profile(time.thread_time)`` per thread started after
    :meth:`start` (every node thread): CPU time with exact call counts, but it
    slows the node several times over, so its shares are only indicative.
    """

    SAMPLES_PER_S = 100

    def __init__(self, tool: str, workdir: Path, top: int = 25) -> None:
        self.tool, self.top, self._workdir = tool, top, workdir
        self._profiles: dict[str, cProfile.Profile] = {}
        self._sampler: subprocess.Popen[bytes] | None = None
        self._samples = workdir / "py-spy.raw"
        self._py_spy = shutil.which("py-spy")
        if tool == "py-spy" and self._py_spy is None:
            raise SystemExit("--profile py-spy: no py-spy on PATH (pip install py-spy)")

    def start(self) -> None:
        if self._py_spy is not None and self.tool == "py-spy":
            command = [
                self._py_spy,
                "record",
                "--pid",
                str(os.getpid()),
                "--threads",
                "--function",
                "--gil",
                "--rate",
                str(self.SAMPLES_PER_S),
                "--format",
                "raw",
                "--output",
                str(self._samples),
            ]
            self._sampler = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            return
        profiles = self._profiles

        def begin(_frame: Any, _event: str, _arg: Any) -> None:
            profile = cProfile.Profile(time.thread_time)
            profiles[threading.current_thread().name] = profile
            profile.enable()  # replaces this hook, in this thread only

        threading.setprofile(begin)

    def stop_and_report(self) -> str:
        if self._sampler is not None:
            self._sampler.send_signal(signal.SIGINT)  # py-spy writes its file and exits
            self._sampler.wait(60)
            self._sampler = None
            threads = _sampled_entries(self._samples, self.SAMPLES_PER_S)
        else:
            threading.setprofile(None)
            for profile in self._profiles.values():
                profile.disable()
            threads = {name: _profiled_entries(profile) for name, profile in self._profiles.items()}
            self._profiles.clear()
        return self._report(threads)

    def _report(self, threads: dict[str, list[Entry]]) -> str:
        out = io.StringIO()
        totals = {name: sum(e.own_s for e in entries) for name, entries in threads.items()}
        total = sum(totals.values()) or 1.0
        what = "GIL held" if self.tool == "py-spy" else "CPU"
        print(f"    {what} by thread ({self.tool}; {total:.1f} s in all):", file=out)
        busiest = sorted(totals, key=lambda name: totals[name], reverse=True)
        for name in busiest[:10]:
            print(f"      {totals[name]:7.2f} s {totals[name] / total:5.1%}  {name}", file=out)
        by_package: dict[str, float] = {}
        for entries in threads.values():
            for e in entries:
                package = _package(e.where)
                by_package[package] = by_package.get(package, 0.0) + e.own_s
        print(f"    {what} by where it was spent (own time, all threads):", file=out)
        for package in sorted(by_package, key=lambda p: by_package[p], reverse=True)[:12]:
            share = by_package[package] / total
            print(f"      {by_package[package]:7.2f} s {share:5.1%}  {package}", file=out)
        own: dict[str, float] = {}
        for entries in threads.values():
            for e in entries:
                own[e.where] = own.get(e.where, 0.0) + e.own_s
        print(f"    top {self.top} functions by own {what} s (all threads):", file=out)
        for where in sorted(own, key=lambda w: own[w], reverse=True)[: self.top]:
            print(f"      {own[where]:7.2f} s {own[where] / total:5.1%}  {where}", file=out)
        for name in busiest:
            if totals[name] / total < 0.08:
                break
            # The thread's own loop (run, _actor_loop, on_receive...) holds ~all of it.
            entries = [e for e in threads[name] if e.cumulative_s < 0.97 * totals[name]]
            entries.sort(key=lambda e: e.cumulative_s, reverse=True)
            print(
                f"    {name}: top {self.top} by cumulative {what} s (frames above 97% of the"
                " thread, its loop, left out)",
                file=out,
            )
            print(f"      {'calls':>8} {'own s':>7} {'cum s':>7}  function", file=out)
            for e in entries[: self.top]:
                calls = "-" if e.calls is None else str(e.calls)
                print(f"      {calls:>8} {e.own_s:7.2f} {e.cumulative_s:7.2f}  {e.where}", file=out)
        return out.getvalue()


def _profiled_entries(profile: cProfile.Profile) -> list[Entry]:
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]  # not in the stubs
    return [
        Entry(calls, own_s, cumulative_s, f"{_short(path)}:{line} {function}")
        for (path, line, function), (_, calls, own_s, cumulative_s, _) in stats.items()
    ]


def _sampled_entries(path: Path, per_s: int) -> dict[str, list[Entry]]:
    """py-spy's raw (collapsed) stacks, ``thread (tid): name;frame;...;frame count``,
    as own and inclusive seconds per function and thread."""
    own: dict[str, dict[str, int]] = {}
    inclusive: dict[str, dict[str, int]] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        name = thread.split(": ", 1)[-1]
        own.setdefault(name, {})
        inclusive.setdefault(name, {})
        if frames:
            leaf = own[name]
            leaf[frames[-1]] = leaf.get(frames[-1], 0) + int(count)
        else:  # a sample with no Python frame: count it as the thread's own
            own[name][name] = own[name].get(name, 0) + int(count)
        for frame in set(frames):
            inclusive[name][frame] = inclusive[name].get(frame, 0) + int(count)
    return {
        name: [
            Entry(None, own[name].get(frame, 0) / per_s, total / per_s, frame)
            for frame, total in {**own[name], **inclusive[name]}.items()
        ]
        for name in own
    }


def _package(where: str) -> str:
    """The library or the project's package a profile entry's code is in: its path's
    first part (``sqlalchemy``, ``loguru``, ``actors``...; the standard library's
    modules as ``stdlib``); native code (solders' signing, SQLite) counts as the Python
    function that called it."""
    match = re.search(r"([\w./<>-]+\.py)", where)
    if match is None:
        return "no Python frame"
    path = _short(match.group(1))
    if path.startswith("/") or path.startswith("<"):
        return "other"
    top = path.split("/", 1)[0]
    return "stdlib" if top.endswith(".py") or top in _STDLIB_PACKAGES else top


_STDLIB_PACKAGES = frozenset(
    ("asyncio", "concurrent", "json", "logging", "multiprocessing", "email", "http", "urllib")
)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# -- the crank node ----------------------------------------------------------------------------


@dataclass
class PhaseResult:
    key: str
    row: Row
    pairs: int
    order_latencies_s: list[float]
    attempts: int
    expired_attempts: int
    resends: int | None
    reconcile: str
    shutdown_ok: bool
    cpu_node_s: float  # this process's, the feeder's included
    cpu_chain_s: float | None
    cpu_server_s: float | None  # the local PostgreSQL server, None on SQLite
    wall_s: float
    feed_rate: float | None = None
    offered: int = 0
    warnings: list[str] = field(default_factory=list)
    profile: str = ""
    database: str = ""
    offered_rate: float | None = None
    cpu_feeder_s: float = 0.0  # the bench's feeder thread storing orders (intake's work)
    cpu_feeder_process_s: float | None = None  # --feeder process: its CPU, not this process's
    cpu_node_sys_s: float = 0.0  # of cpu_node_s, in the kernel (system time)
    threads: str = ""  # thread_cpu_line
    rounds: str = ""  # the settlement's status rounds, and how many a slot started
    stages: str = ""  # stage_line


DEFAULT_STATUS_MS = 200
DEFAULT_WAKEUP_MS = CrankSettings.model_fields["intake_wakeup_ms"].default


def node_settings(
    db_url: str,
    chain: ChainProcess,
    poll_ms: int,
    key: str,
    rpc_batch_max: int = 1,
    *,
    status_ms: int = DEFAULT_STATUS_MS,
    slot_feed: str = "auto",
    wakeup_ms: int = DEFAULT_WAKEUP_MS,
) -> CrankSettings:
    values: dict[str, Any] = {
        "instance_id": f"bench-{key}",
        "db_url": db_url,
        "rpc_urls": (chain.url,),
        "rpc_batch_max": rpc_batch_max,
        "polling_interval_ms": poll_ms,
        "lease_ttl_ms": 15_000,
        "membership_interval_ms": 1_000,
    }
    if (
        status_ms != DEFAULT_STATUS_MS
    ):  # named only when set: a checkout from before has no such key
        values["settlement_status_interval_ms"] = status_ms
    if slot_feed != "auto":  # the same: named only when set
        values["slot_feed_url"] = slot_feed
    if wakeup_ms != DEFAULT_WAKEUP_MS:  # the same
        values["intake_wakeup_ms"] = wakeup_ms
    return CrankSettings.model_validate(values)


@contextmanager
def database_url(backend: str, workdir: Path, key: str, pg_url: str) -> Iterator[str]:
    """A new empty database: an SQLite file, or a PostgreSQL schema dropped after."""
    # Imported here: scale_bench imports this module.
    from benchmarks.scale_bench import fresh_database as fresh_url  # noqa: PLC0415

    with fresh_url(backend, workdir, key, pg_url) as url:
        yield url


def fresh_database(url: str, scenario: Scenario) -> Engine:
    engine = storage.open_engine(url)
    storage.upgrade(engine)
    for market in scenario.markets:
        storage.insert_market(engine, market)
    return engine


class StatementCount:
    """The node's database work, counted by SQLAlchemy's engine events (every engine
    but the bench's own): statements sent (an executemany is one, its rows counted
    apart), transactions begun, committed and rolled back. On PostgreSQL each of
    those is a round trip (psycopg sends BEGIN on its own); an executemany is one per
    row below ``storage.engine.PIPELINE_MIN_ROWS`` rows, two from there (a pipeline, then
    the statement that re-arms the server's idle timer); so round trips = statements
    - executemanys + their round trips + begins + commits + rollbacks; on SQLite they
    are calls in process."""

    def __init__(self, excluded: Engine) -> None:
        self._excluded = excluded
        self.statements = self.many_rows = self.begins = self.commits = self.rollbacks = 0
        self.manys = self.many_trips = 0
        self.by_shape: Counter[str] = Counter()
        self.rows_by_shape: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __enter__(self) -> StatementCount:
        event.listen(Engine, "before_cursor_execute", self._statement)
        for name in ("begin", "commit", "rollback"):
            event.listen(Engine, name, getattr(self, f"_{name}"))
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(Engine, "before_cursor_execute", self._statement)
        for name in ("begin", "commit", "rollback"):
            event.remove(Engine, name, getattr(self, f"_{name}"))

    def _mine(self, connection: Any) -> bool:
        return connection.engine is not self._excluded

    def _statement(
        self,
        connection: Any,
        _cursor: Any,
        _sql: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        if self._mine(connection):
            # One multi-row INSERT made of many rows (SQLAlchemy's insertmanyvalues, which
            # storage.engine turns on for PostgreSQL) is one statement, one round trip.
            if getattr(_context, "execute_style", None) is ExecuteStyle.INSERTMANYVALUES:
                executemany = False
            with self._lock:
                self.statements += 1
                self.by_shape[statement_shape(_sql)] += 1
                if executemany:
                    rows = len(parameters)
                    self.manys += 1
                    self.many_rows += rows
                    # storage.engine on PostgreSQL: one by one, or a pipeline and a probe.
                    self.many_trips += rows if rows < PIPELINE_MIN_ROWS else 2
                    self.rows_by_shape[statement_shape(_sql)] += rows

    def _begin(self, connection: Any) -> None:
        if self._mine(connection):
            with self._lock:
                self.begins += 1

    def _commit(self, connection: Any) -> None:
        if self._mine(connection):
            with self._lock:
                self.commits += 1

    def _rollback(self, connection: Any) -> None:
        if self._mine(connection):
            with self._lock:
                self.rollbacks += 1

    def round_trips(self) -> int:
        one_each = self.statements - self.manys + self.many_trips
        return one_each + self.begins + self.commits + self.rollbacks

    def summary(self, fills: int) -> str:
        per = max(fills, 1)
        return (
            f"{self.statements / per:.2f} statements per fill ({self.statements} in all, "
            f"executemany rows {self.many_rows}), {self.begins / per:.2f} transactions per "
            f"fill ({self.commits} committed, {self.rollbacks} rolled back); round trips on "
            f"a server database: {self.round_trips() / per:.2f} per fill; most sent: "
            + ", ".join(f"{shape} x{count}" for shape, count in self.by_shape.most_common(6))
            + "; executemany rows: "
            + ", ".join(f"{shape} x{n}" for shape, n in self.rows_by_shape.most_common(6))
        )


# A write names its table at once (``UPDATE orders SET ... WHERE EXISTS (SELECT ... FROM
# distributed_locks ...)`` is an UPDATE of orders); a read, after its first FROM.
_SHAPE = re.compile(
    r"^\s*(?:(INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)|(SELECT|WITH)\b(?:.*?\bFROM\s+(\w+))?)",
    re.S,
)


@functools.lru_cache(maxsize=4096)  # counted in this process: its cost is the node's
def statement_shape(sql: str) -> str:
    """``SELECT orders``, ``UPDATE settlements``...: the verb and the table written, or
    for a read the first table read."""
    found = _SHAPE.match(sql)
    if found is None:
        return sql.split(None, 1)[0]
    verb, table = found.group(1, 2) if found.group(1) else found.group(3, 4)
    return verb.split()[0] if table is None else f"{verb.split()[0]} {table}"


def confirmed_count(engine: Engine) -> int:
    stmt = select(func.count()).where(_SETTLEMENTS.c.status == "confirmed")
    with storage.read_transaction(engine, "bench.confirmed") as connection:
        return int(connection.execute(stmt).scalar_one())


def wait_until(predicate: Callable[[], bool], timeout_s: float, every_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        pause.wait(every_s)
    return True


def markets_held(node: Node) -> bool:
    leases = node.status().get("leases", {})
    held = leases.get("held", []) if isinstance(leases, dict) else []
    return sum(1 for lease in held if lease.get("market")) == MARKETS


class Feeder(threading.Thread):
    """Stores the pairs at ``rate`` pairs per second, catching up when late, for at most
    ``duration_s``: what it could not store by then was offered and not taken."""

    def __init__(
        self, engine: Engine, pairs: Sequence[Pair], rate: float, duration_s: float
    ) -> None:
        super().__init__(name="bench-feeder", daemon=True)
        self._engine, self._pairs, self._rate = engine, pairs, rate
        self._duration_s = duration_s
        # Told of each order stored, as intake tells its listeners (set once the node
        # runs: its OrderMonitor's wake-up among them); a feeder process tells nobody.
        self.told: Callable[[storage.StoredOrder], None] = lambda _stored: None
        self.stored = 0
        self.elapsed_s = 0.0
        self.cpu_s = 0.0  # this thread's CPU: the bench's, not the node's

    def run(self) -> None:
        started, cpu_started = time.perf_counter(), time.thread_time()
        pause = threading.Event()  # never set: a bounded wait
        for number, pair in enumerate(self._pairs):
            now = time.perf_counter()
            if now - started >= self._duration_s:
                break
            pause.wait(max(0.0, started + number / self._rate - now))
            self.told(storage.store_order(self._engine, pair.sell))
            self.told(storage.store_order(self._engine, pair.buy))
            self.stored += 1
        self.elapsed_s = time.perf_counter() - started
        self.cpu_s = time.thread_time() - cpu_started


def _feed_from_process(
    db_url: str, pairs: Sequence[Pair], rate: float, duration_s: float, *, go: Any, report: Any
) -> None:
    """:class:`Feeder`'s work in a process of its own (``--feeder process``): its own
    engine on the node's database, the same pacing from ``go`` on; sends back (stored,
    elapsed_s, cpu_s)."""
    logger.remove()
    engine = storage.open_engine(db_url)
    feeder = Feeder(engine, pairs, rate, duration_s)
    if not go.wait(START_TIMEOUT_S * 4):
        return
    feeder.run()  # on this process's main thread: no GIL shared with the node
    engine.dispose()
    report.send((feeder.stored, feeder.elapsed_s, feeder.cpu_s))
    report.close()


class FeederProcess:
    """:class:`Feeder` in a spawned process: the node's process then does only the
    node's work (in `crank-node run`, intake shares the node's process and GIL; here
    another process stores the orders, as a node taking orders elsewhere would see)."""

    def __init__(self, db_url: str, pairs: Sequence[Pair], rate: float, duration_s: float) -> None:
        # Started now, so that its imports are done while the node starts; it feeds from
        # start() on.
        context = multiprocessing.get_context("spawn")
        self._go = context.Event()
        self._receiving, sending = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_feed_from_process,
            args=(db_url, list(pairs), rate, duration_s),
            kwargs={"go": self._go, "report": sending},
            name="bench-feeder",
            daemon=True,  # a phase that fails before start() leaves no feeder behind
        )
        self._process.start()
        sending.close()  # the child's end: EOF here if it dies without a report
        self.stored = 0
        self.elapsed_s = 0.0
        self.cpu_s = 0.0  # the feeder process's main thread: not this process's CPU

    def start(self) -> None:
        self._go.set()

    def join(self, timeout_s: float) -> None:
        if self._receiving.poll(timeout_s):
            with contextlib.suppress(EOFError):
                self.stored, self.elapsed_s, self.cpu_s = self._receiving.recv()
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        if self._process.exitcode != 0:
            print(f"  the feeder process ended with exit code {self._process.exitcode}")


class WarningCount:
    """A loguru sink counting WARNING and worse records by ``action``, keeping the first
    message of each."""

    def __init__(self) -> None:
        self.by_action: dict[str, int] = {}
        self.first: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, message: Any) -> None:
        action = str(message.record["extra"].get("action", "-"))
        with self._lock:
            self.by_action[action] = self.by_action.get(action, 0) + 1
            self.first.setdefault(action, str(message.record["message"])[:200])

    def lines(self) -> list[str]:
        counted = sorted(self.by_action.items(), key=lambda item: -item[1])
        return [f"{action} x{count}: {self.first[action]}" for action, count in counted]


@contextmanager
def running_node(settings: CrankSettings, wallet: Keypair, events: list[Any]) -> Iterator[Node]:
    node = Node(settings, signers=(wallet,), settlement_listeners=(events.append,))
    node.start()
    try:
        yield node
    finally:
        reports = ShutdownCoordinator(node.shutdown_phases(), deadline_s=60).run()
        node.drain_report["shutdown_ok"] = int(all(r.outcome == "done" for r in reports))


def _feeder(
    db_url: str,
    engine: Engine,
    pairs: Sequence[Pair],
    rate: float | None,
    duration_s: float,
    *,
    as_thread: bool,
) -> Feeder | FeederProcess | None:
    """A steady phase's feeder (None for a burst): a thread here, or a process of its own."""
    if rate is None:
        return None
    if as_thread:
        return Feeder(engine, pairs, rate, duration_s)
    return FeederProcess(db_url, pairs, rate, duration_s)


def _feed(feeder: Feeder | FeederProcess, node: Node, duration_s: float) -> None:
    """Run the feeder to its end. A feeder thread tells the node's intake listeners of
    each order it stores, as intake does (the OrderMonitor's wake-up among them); a
    feeder process cannot."""
    if isinstance(feeder, Feeder) and node.intake is not None:
        listeners = node.intake.listeners

        def told(stored: storage.StoredOrder) -> None:
            for listener in listeners:
                listener(stored)

        feeder.told = told
    feeder.start()
    feeder.join(duration_s + 30)


def run_phase(
    key: str,
    name: str,
    pairs: Sequence[Pair],
    *,
    backend: str,
    pg_url: str,
    workdir: Path,
    **settings: Any,
) -> PhaseResult:
    """:func:`run_on` on a new empty database of ``backend``."""
    with database_url(backend, workdir, key, pg_url) as db_url:
        return run_on(db_url, key, name, pairs, workdir=workdir, **settings)


def run_on(
    db_url: str,
    key: str,
    name: str,
    pairs: Sequence[Pair],
    *,
    chain: ChainProcess,
    rate: float | None = None,
    duration_s: float = 0.0,
    drain_s: float,
    workdir: Path,
    poll_ms: int,
    rpc_batch_max: int = 1,
    status_ms: int = DEFAULT_STATUS_MS,
    slot_feed: str = "auto",
    wakeup_ms: int = DEFAULT_WAKEUP_MS,
    profiler: ThreadProfiles | None,
    feeder_process: bool = False,
) -> PhaseResult:
    """Burst (``rate`` None: every pair stored first) or steady (a feeder at ``rate``
    for ``duration_s``, a thread of this process or a process of its own); then at most
    ``drain_s`` for the last settlements."""
    scenario = chain.scenario
    engine = fresh_database(db_url, scenario)
    before = scenario.snapshot_balances(chain.url)
    if rate is None:
        for pair in pairs:
            storage.store_order(engine, pair.sell)
            storage.store_order(engine, pair.buy)
    events: list[Any] = []
    feeder = _feeder(db_url, engine, pairs, rate, duration_s, as_thread=not feeder_process)
    warnings = WarningCount()
    sink = logger.add(warnings, level="WARNING")
    if profiler is not None:
        profiler.start()
    on_server = db_url.startswith("postgresql")
    cpu_node, cpu_others, wall = os.times(), others_cpu_s(chain.pid, on_server), time.perf_counter()
    threads_before = thread_cpu_s()
    settings = node_settings(
        db_url,
        chain,
        poll_ms,
        key,
        rpc_batch_max,
        status_ms=status_ms,
        slot_feed=slot_feed,
        wakeup_ms=wakeup_ms,
    )
    statements = StatementCount(excluded=engine)
    with statements, running_node(settings, scenario.settlement_authority, events) as node:
        if not wait_until(lambda: markets_held(node), START_TIMEOUT_S, 0.05):
            print(f"  {name}: the node did not take both markets in {START_TIMEOUT_S} s")
        if feeder is not None:
            _feed(feeder, node, duration_s)
        expected = len(pairs) if feeder is None else feeder.stored
        if not wait_until(lambda: confirmed_count(engine) >= expected, drain_s, 0.2):
            print(f"  {name}: not every settlement confirmed within {drain_s:.0f} s")
        state = node.status().get("pipeline", {}).get("settlement", {})
        resends = state.get("resends") if isinstance(state, dict) else None
        rounds = (
            f", status rounds {state['status_rounds']} ({state['rounds_on_slots']} on slots)"
            if isinstance(state, dict) and "rounds_on_slots" in state
            else ""
        )
        threads_after = thread_cpu_s()  # before the node's threads end
    wall_s = time.perf_counter() - wall
    cpu_node_s = sum(os.times()[:2]) - sum(cpu_node[:2])
    cpu_node_sys_s = os.times()[1] - cpu_node[1]
    cpu_chain_s, cpu_server_s = map(_spent, others_cpu_s(chain.pid, on_server), cpu_others)
    profile = profiler.stop_and_report() if profiler is not None else ""
    logger.remove(sink)
    result = phase_figures(name, engine)
    reconciled = reconcile(before, scenario.snapshot_balances(chain.url), engine)
    engine.dispose()
    unfinished = expected - result.row.count
    if reconciled.ok and not unfinished:
        verdict_text = f"ok ({reconciled.accounts_checked} accounts)"
    else:
        verdict_text = f"FAILED ({len(reconciled.mismatches)} accounts differ)"
        if unfinished:
            # Landed but not yet recorded: the database learns of them on recovery.
            verdict_text += f", {unfinished} settlements unfinished at stop"
    confirmed_events = sum(isinstance(e, Finished) and e.outcome == "confirmed" for e in events)
    if confirmed_events != result.row.count:
        print(f"  {name}: {confirmed_events} Finished events, {result.row.count} confirmed rows")
    return PhaseResult(
        key=key,
        row=result.row,
        pairs=expected,
        order_latencies_s=result.order_latencies_s,
        attempts=result.attempts,
        expired_attempts=max(
            sum(isinstance(e, AttemptsExpired) for e in events), result.expired_attempts
        ),
        resends=resends,
        rounds=rounds,
        reconcile=verdict_text,
        shutdown_ok=bool(node.drain_report.get("shutdown_ok")),
        cpu_node_s=cpu_node_s,
        cpu_node_sys_s=cpu_node_sys_s,
        cpu_chain_s=cpu_chain_s,
        cpu_server_s=cpu_server_s,
        wall_s=wall_s,
        feed_rate=feeder.stored / feeder.elapsed_s if feeder and feeder.elapsed_s else None,
        offered=len(pairs),
        warnings=warnings.lines(),
        profile=profile,
        threads=thread_cpu_line(threads_before, threads_after, result.row.count),
        database=statements.summary(result.row.count),
        stages=result.stages,
        offered_rate=rate,
        cpu_feeder_s=feeder.cpu_s if isinstance(feeder, Feeder) else 0.0,
        cpu_feeder_process_s=feeder.cpu_s if isinstance(feeder, FeederProcess) else None,
    )


class Figures(NamedTuple):
    row: Row
    order_latencies_s: list[float]
    attempts: int
    expired_attempts: int
    stages: str = ""  # stage_line


def stage_line(
    settled: Sequence[datetime], signed: Sequence[datetime], done: Sequence[datetime]
) -> str:
    """When each stage had done a share of the phase's work, counted from its first fill:
    where a pipeline waits shows as a stage that ends late after the one before it."""
    if not settled:
        return ""
    start = min(settled)
    parts = []
    for label, times in (
        ("fills written", settled),
        ("first attempts written", signed),
        ("confirmed", done),
    ):
        ordered = sorted(_seconds(start, at) for at in times)
        shares = "/".join(f"{percentile(ordered, q):.2f}" for q in (0.1, 0.5, 0.9, 1.0))
        parts.append(f"{label} {shares}")
    return "stages (s from the first fill to 10/50/90/100% of it): " + "; ".join(parts)


def phase_figures(name: str, engine: Engine) -> Figures:
    """Fills confirmed, their window and latencies, attempts: all from the database."""
    confirmed = _HISTORY.c.created_at.label("confirmed_at")
    stmt = (
        select(_SETTLEMENTS.c.created_at, confirmed, _ORDERS.c.created_at.label("ordered_at"))
        .join(_HISTORY, _HISTORY.c.settlement_id == _SETTLEMENTS.c.id)
        .join(_FILLS, _FILLS.c.id == _SETTLEMENTS.c.fill_id)
        .join(_ORDERS, _ORDERS.c.id == _FILLS.c.taker_order_id)
        .where(_SETTLEMENTS.c.status == "confirmed", _HISTORY.c.status == "confirmed")
    )
    attempts = select(_ATTEMPTS.c.state, func.count()).group_by(_ATTEMPTS.c.state)
    first_signed = select(func.min(_ATTEMPTS.c.created_at)).group_by(_ATTEMPTS.c.settlement_id)
    with storage.read_transaction(engine, "bench.figures") as connection:
        rows = connection.execute(stmt).all()
        by_state = {str(state): int(count) for state, count in connection.execute(attempts)}
        signed = [at for (at,) in connection.execute(first_signed)]
    latencies = [_seconds(row.created_at, row.confirmed_at) for row in rows]
    order_latencies = [_seconds(row.ordered_at, row.confirmed_at) for row in rows]
    if rows:
        first = min(row.created_at for row in rows)
        last = max(row.confirmed_at for row in rows)
        window_s = _seconds(first, last)
    else:
        window_s = 0.0
    row = Row(name, len(rows), window_s, latencies)
    stages = stage_line(
        [row.created_at for row in rows], signed, [row.confirmed_at for row in rows]
    )
    return Figures(row, order_latencies, sum(by_state.values()), by_state.get("expired", 0), stages)


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


# -- the report --------------------------------------------------------------------------------


def print_table(rows: Sequence[Row], slot_ms: int) -> None:
    print(
        f"  {'':<62} {'fills':>6} {'s':>6} {'fills/s':>8} "
        f"{'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'p99 slots':>9}"
    )
    for row in rows:
        line = f"  {row.name:<62} {row.count:6d} {row.elapsed_s:6.1f} {row.rate:8.0f}"
        if row.latencies_s:
            ms = [value * 1000 for value in row.latencies_s]
            p50, p90, p99 = (percentile(ms, q) for q in (0.5, 0.9, 0.99))
            line += f" {p50:7.0f} {p90:7.0f} {p99:7.0f} {max(ms):7.0f} {p99 / slot_ms:9.2f}"
        print(line)


def print_phase(phase: PhaseResult, slot_ms: int) -> None:
    row = phase.row
    attempts = phase.attempts / row.count if row.count else float("nan")
    chain = f"{phase.cpu_chain_s:.1f} s" if phase.cpu_chain_s is not None else "n/a"
    server = (
        f", PostgreSQL server {phase.cpu_server_s:.1f} s (every postgres process of this host)"
        if phase.cpu_server_s is not None
        else ""
    )
    print(
        f"  {row.name}: {row.count}/{phase.pairs} fills confirmed in {row.elapsed_s:.1f} s "
        f"(first fill -> last confirmed), {row.rate:.0f} fills/s; attempts/settlement "
        f"{attempts:.3f}, expired attempts {phase.expired_attempts}, resends {phase.resends}"
        f"{phase.rounds}; "
        f"reconcile {phase.reconcile}; shutdown {'done' if phase.shutdown_ok else 'NOT clean'}"
    )
    print(
        f"    CPU while the node ran ({phase.wall_s:.1f} s): this process {phase.cpu_node_s:.1f} s "
        f"({phase.cpu_node_s / phase.wall_s:.0%} of a core; {phase.cpu_node_sys_s:.1f} s of it "
        f"in the kernel), localnet process {chain}{server}; "
        f"{process_cpu_per_fill_ms(phase):.2f} ms of this process's CPU per settled fill, "
        + (
            f"the feeder's process {phase.cpu_feeder_process_s:.1f} s apart"
            if phase.cpu_feeder_process_s is not None
            else f"{cpu_per_fill_ms(phase):.2f} ms without the feeder's {phase.cpu_feeder_s:.1f} s"
        )
    )
    if phase.feed_rate is not None:
        ms = [value * 1000 for value in phase.order_latencies_s]
        print(
            f"    stored {phase.pairs} of {phase.offered} pairs offered ({phase.feed_rate:.0f}/s); "
            f"order stored -> confirmed: p50 {percentile(ms, 0.5):.0f} ms, "
            f"p99 {percentile(ms, 0.99):.0f} ms ({percentile(ms, 0.99) / slot_ms:.2f} slots)"
        )
    print(f"    {phase.threads}")
    if phase.stages:
        print(f"    {phase.stages}")
    print(f"    database (the node's engine, start to stop): {phase.database}")
    print(f"    warnings logged:{'' if phase.warnings else ' none'}")
    for line in phase.warnings:
        print(f"      {line}")
    if phase.profile:
        print(phase.profile, end="")


def process_cpu_per_fill_ms(phase: PhaseResult) -> float:
    """This process's CPU seconds over the phase (the node, plus the bench's feeder and
    polls) per settled fill, in ms."""
    return phase.cpu_node_s * 1000 / phase.row.count if phase.row.count else float("nan")


def cpu_per_fill_ms(phase: PhaseResult) -> float:
    """The node's CPU per settled fill, in ms: this process's less the feeder thread's
    (storing orders is intake's work, not the pipeline's); still counts the bench's
    few polls of the database."""
    cpu_s = phase.cpu_node_s - phase.cpu_feeder_s
    return cpu_s * 1000 / phase.row.count if phase.row.count else float("nan")


def verdict(value: float, target: float, *, at_most: bool = False) -> str:
    met = value <= target if at_most else value >= target
    return "met" if met else "MISSED"


def print_ratios(
    reference: Reference | None,
    naive: Row | None,
    phases: Sequence[PhaseResult],
    slot_ms: int,
) -> None:
    print("ratios and targets")
    fastest = max(phases, key=lambda phase: phase.row.rate, default=None)
    if fastest is None:
        return
    capacity, which = fastest.row.rate, f"crank-node {fastest.key}"
    lines = []
    if reference is not None:  # --reference 0: localnet alone was not measured
        http = reference.per_request.rate
        lines += [
            (
                f"{which} / HTTP 1 tx/request",
                f"{capacity / http:.2f}",
                f"target >= 0.8: {verdict(capacity / http, 0.8)}",
            ),
            (
                f"{which} / HTTP solana-py",
                f"{capacity / reference.solana_py.rate:.2f}",
                "(context)",
            ),
            (
                f"{which} / HTTP batches",
                f"{capacity / reference.batches.rate:.2f}",
                f"target >= 0.7: {verdict(capacity / reference.batches.rate, 0.7)}",
            ),
        ]
    lines.append(
        (f"{which} fills/s", f"{capacity:.0f}", f"target >= 300: {verdict(capacity, 300)}")
    )
    for phase in phases:
        # The CPU targets: 0.3 ms per fill in the burst, 0.5 ms at a steady rate.
        cpu_target = 0.3 if phase.feed_rate is None else 0.5
        cpu_ms = cpu_per_fill_ms(phase)
        lines.append(
            (
                f"crank-node {phase.key} CPU per settled fill",
                f"{cpu_ms:.2f} ms",
                f"target <= {cpu_target}: {verdict(cpu_ms, cpu_target, at_most=True)}",
            )
        )
        if phase.feed_rate is not None and phase.row.latencies_s:
            p99 = percentile(phase.row.latencies_s, 0.99) * 1000 / slot_ms
            # 2.5 slots at 300/s offered, 2.3 at lower rates (issue 20).
            slots_target = 2.5 if (phase.offered_rate or 0) > 100 else 2.3
            lines.append(
                (
                    f"crank-node {phase.key} p99 fill -> confirmed",
                    f"{p99:.2f} slots",
                    f"target <= {slots_target}: {verdict(p99, slots_target, at_most=True)}",
                )
            )
    if naive is not None and naive.rate > 0:
        lines.append((f"{which} / naive crank", f"{capacity / naive.rate:.0f}x", ""))
    floor = fill_floor.measure()
    lines.append(
        (
            "floor: the work a fill needs, libraries alone",
            f"{floor.total_us / 1000:.2f} ms",
            "no actors, ORM, HTTP client or logs (benchmarks/fill_floor.py)",
        )
    )
    lines += [(f"  {label}", f"{micros:.0f} us", "") for label, micros in floor.parts()]
    for label, value, note in lines:
        print(f"  {label:<46} {value:>11}   {note}".rstrip())


# -- main ----------------------------------------------------------------------------------------


class OnChain(NamedTuple):
    naive: Row | None
    floor: Row | None
    phases: list[PhaseResult]


def measure_on_chain(args: argparse.Namespace, workdir: Path) -> OnChain:
    """The naive crank, the chain's floor, then the node's phases, on one localnet."""
    profiler = ThreadProfiles(args.profile, workdir) if args.profile else None
    chain = ChainProcess(args.slot_ms, Keypair(), args.seed)
    try:
        scenario = chain.scenario
        naive = floor = None
        if args.naive:
            pairs = crossing_pairs(scenario, 2 * args.naive, first_id=1)
            fills = [fill_of(scenario, pair, n) for n, pair in enumerate(pairs)]
            naive = asyncio.run(naive_crank(chain.url, scenario, fills[: args.naive], NAIVE))
            floor = asyncio.run(chain_floor(chain.url, scenario, fills[args.naive :], FLOOR))
        phase = partial(
            run_phase,
            chain=chain,
            workdir=workdir,
            poll_ms=args.poll_ms,
            rpc_batch_max=args.rpc_batch_max,
            status_ms=args.status_ms,
            slot_feed=args.slot_feed,
            wakeup_ms=args.wakeup_ms,
            drain_s=args.drain_s,
            profiler=profiler,
            feeder_process=args.feeder == "process",
            backend=args.db,
            pg_url=args.pg_url,
        )
        phases = []
        if args.burst:
            pairs = crossing_pairs(scenario, args.burst, first_id=10**6)
            name = f"crank-node burst ({args.burst} pairs stored before start)"
            phases.append(phase("burst", name, pairs))
        for number, rate in enumerate(args.rate, start=2):
            pairs = crossing_pairs(scenario, int(rate * args.duration), first_id=number * 10**6)
            name = f"crank-node steady ({rate:.0f} fills/s offered for {args.duration:.0f} s)"
            phases.append(
                phase(f"steady-{rate:.0f}", name, pairs, rate=rate, duration_s=args.duration)
            )
    finally:
        chain.close()
    return OnChain(naive, floor, phases)


def checkout() -> str:
    """The commit measured (and whether the tree differs from it), or "unknown"."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}{' (modified)' if changed else ''}"


def _add_node_arguments(parser: argparse.ArgumentParser) -> None:
    """The node's settings, the garbage collector, the feeder and the database server."""
    parser.add_argument(
        "--rpc-batch-max",
        type=int,
        default=CrankSettings.model_fields["rpc_batch_max"].default,
        help="the node's rpc_batch_max: JSON-RPC requests per HTTP request (1: one each)",
    )
    parser.add_argument(
        "--status-ms",
        type=int,
        default=DEFAULT_STATUS_MS,
        help="the node's settlement_status_interval_ms: how often it asks about attempts",
    )
    parser.add_argument(
        "--wakeup-ms",
        type=int,
        default=DEFAULT_WAKEUP_MS,
        help="the node's intake_wakeup_ms: a market read again at most this often for the "
        "orders a thread feeder stores (told as intake tells) or, on PostgreSQL, any feeder "
        "stores (the server's notices); 0: none, the polls alone",
    )
    parser.add_argument(
        "--slot-feed",
        choices=("auto", "off"),
        default="auto",
        help="the node's slot_feed_url: status rounds on localnet's slotSubscribe (auto, "
        "as `crank-node run` does) or on the timer alone (off)",
    )
    parser.add_argument(
        "--gc",
        choices=("node", "python"),
        default="node",
        help="garbage collector thresholds: the node's, as `crank-node run` sets them "
        "(crank_node.node.gc_tuning), or Python's defaults",
    )
    parser.add_argument(
        "--feeder",
        choices=("thread", "process"),
        default="thread",
        help="steady phases: who stores the orders: a thread of the node's process (as "
        "intake in `crank-node run`; its CPU is subtracted) or a process of its own",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "CRANK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="--db postgresql: a new schema per phase here, dropped after",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument(
        "--rate",
        type=float,
        nargs="*",
        default=[300.0, 50.0],
        help="steady phases: fills/s offered, one phase each (none: skip)",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="steady phase: seconds fed")
    # As many fills as localnet's reference transactions: both windows hold the same fixed
    # ~2 slots from the last send to its confirmation, so the ratio compares like with like.
    parser.add_argument("--burst", type=int, default=3000, help="burst phase: pairs (0: skip)")
    parser.add_argument("--naive", type=int, default=15, help="naive crank: fills (0: skip)")
    parser.add_argument("--reference", type=int, default=3000, help="localnet alone: txs (0: skip)")
    parser.add_argument(
        "--drain-s", type=float, default=40.0, help="a phase's wait for its last settlements"
    )
    parser.add_argument("--poll-ms", type=int, default=100, help="the node's order polling")
    parser.add_argument("--log", choices=("file", "none"), default="file")
    parser.add_argument(
        "--profile", choices=("py-spy", "cprofile"), help="per-thread CPU profile of the node"
    )
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    _add_node_arguments(parser)
    args = parser.parse_args(argv)
    for name in ("burst", "naive", "reference"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be 0 (skip) or more, not {getattr(args, name)}")
    if args.gc == "node":
        tune_garbage_collector()  # the node runs in this process, as in `crank-node run`
    wakeups = (
        f"intake wake-ups at most every {args.wakeup_ms} ms" if args.wakeup_ms else "no wake-ups"
    )
    if args.feeder == "process":
        wakeups = (
            f"wake-ups at most every {args.wakeup_ms} ms on the server's notices of the "
            "feeder process's stores"
            if args.wakeup_ms and args.db == "postgresql"
            else "no wake-ups (a feeder process tells the node nothing, and SQLite has no notices)"
        )
    print(
        f"crank-node pipeline at {checkout()}: 1 node, localnet slot {args.slot_ms} ms, {args.db}, "
        f"rpc_batch_max {args.rpc_batch_max}, status every {args.status_ms} ms, "
        f"slot feed {args.slot_feed}, polls every {args.poll_ms} ms, {wakeups}, "
        f"gc thresholds {gc.get_threshold()}; "
        f"{MARKETS} markets, {MAKERS} makers, 1-lot crossing pairs"
    )
    reference = measure_localnet(args.slot_ms, args.reference) if args.reference else None
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as scratch:
        if args.log == "file":
            log_file = Path(scratch) / "node.log"
            configure_logging(level="ERROR", text_path=log_file, file_level="INFO")
        else:
            logger.remove()
        try:
            measured = measure_on_chain(args, Path(scratch))
        finally:
            logger.remove()
    print("fills per second (latency: each fill's own, where measured)")
    rows = []
    if reference is not None:
        rows += [reference.in_process, reference.per_request]
        rows += [reference.solana_py, reference.batches]
    rows += [row for row in (measured.naive, measured.floor) if row is not None]
    rows += [phase.row for phase in measured.phases]
    print_table(rows, args.slot_ms)
    print("phases")
    for phase in measured.phases:
        print_phase(phase, args.slot_ms)
    print_ratios(reference, measured.naive, measured.phases, args.slot_ms)
    print(
        "localnet rows: first send -> last 'confirmed', server in its own process; in-process:\n"
        "  LiteSVM executing the same transactions. naive and floor: per fill, blockhash ->\n"
        "  confirmed. crank-node: first fill written -> last settlement confirmed; latency:\n"
        "  settlement written -> its 'confirmed' history row (SQLite's clock)."
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process (bench and node): {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
