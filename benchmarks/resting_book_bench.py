"""What a resting book costs OrderMonitor: CPU per poll, with nothing trading.

    python3 benchmarks/resting_book_bench.py [--orders 3000] [--makers 30] [--polls 20]
                                             [--db sqlite|postgresql] [--pg-url URL]

A market holds ``--orders`` funded sells that never cross (no buys), spread over
``--makers`` makers, each of whose pay account covers all of its orders. An
OrderMonitor (real localnet over HTTP, a real RpcRouter, a real SQLite file or a
PostgreSQL schema) is handed the market and polled ``--polls`` times on a manual
clock, each poll waited out until its funding answers were handled; the chain does
not move between polls (slots are manual), as on a quiet market. Then one maker's
account changes (a deposit) and one more poll runs.

Printed: the monitor thread's CPU time for the first poll (every order read in
full and judged), per later poll (the resting book's steady cost), and for the
poll after the deposit; and how many of each poll's orders were judged. Process
CPU is not used: the localnet answering runs in this process too. Log lines are
dropped (the first poll logs one per order told, and writing them to a terminal
would be what it measured). Prints figures only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger
from solders.keypair import Keypair
from spl.token.instructions import get_associated_token_address

import market as domain
import storage
from actors.lock_actor import MarketsChanged
from actors.order_monitor import GetMonitorState, MonitorState, OrderMonitor
from actors.rpc import RpcRouter, RpcRouterConfig
from benchmarks.scale_bench import fresh_database
from localnet import LocalnetServer
from localnet.config import LocalnetConfig
from localnet.fixtures import MintFixture
from supervision import ActorHandle, ManualClock, launch

LOT_ATOMS = 10**6
TICK_ATOMS = 1_000
POLL_S = 1.0


class _Sink:
    """MatchActor's place: counts what it is told."""

    def __init__(self) -> None:
        self.told = 0

    def tell(self, _message: Any) -> None:
        self.told += 1


class _Judged:
    """Wraps market.judge_funding: how many orders each call judged."""

    def __init__(self) -> None:
        self.real = domain.judge_funding
        self.orders = 0

    def __call__(self, market: domain.Market, claims: Any, accounts: Any) -> Any:
        claims = list(claims)
        self.orders += len(claims)
        return self.real(market, claims, accounts)


def _thread_cpu_s(name_prefix: str) -> float:
    (thread,) = [t for t in threading.enumerate() if t.name.startswith(name_prefix)]
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def run(args: argparse.Namespace) -> None:
    judged = _Judged()
    domain.judge_funding = judged  # type: ignore[attr-defined]  # OrderMonitor calls it as domain.judge_funding
    per_maker = -(-args.orders // args.makers)
    with (
        tempfile.TemporaryDirectory() as folder,
        fresh_database(args.db, Path(folder), "resting", args.pg_url) as url,
        LocalnetServer(LocalnetConfig(port=0, slot_ms=0)) as localnet,
    ):
        engine = storage.open_engine(url)
        try:
            storage.upgrade(engine)
            fixtures = localnet.fixtures
            authority = Keypair()
            base, quote = fixtures.create_mint(decimals=6), fixtures.create_mint(decimals=6)
            market = domain.Market(
                market_id="BASE-QUOTE",
                base_mint=base.address,
                base_decimals=6,
                quote_mint=quote.address,
                quote_decimals=6,
                lot_size_atoms=LOT_ATOMS,
                tick_size_atoms=TICK_ATOMS,
                settlement_authority=authority.pubkey(),
                fee_payer=Keypair().pubkey(),
            )
            storage.insert_market(engine, market, authority=authority)
            makers = [Keypair() for _ in range(args.makers)]
            signed = []
            for k in range(args.orders):
                maker = makers[k % len(makers)]
                pay = get_associated_token_address(maker.pubkey(), base.address)
                terms = domain.Order(
                    market_id=market.market_id,
                    side=domain.Side.SELL,
                    price_atoms=(10 + k % 50) * TICK_ATOMS,
                    size_atoms=LOT_ATOMS,
                    maker=maker.pubkey(),
                    pay_account=pay,
                    receive_account=Keypair().pubkey(),
                    client_order_id=k,
                    expiry_s=int(time.time()) + 86_400,
                    nonce=k,
                )
                signed.append(domain.sign_order(terms, maker))
            for maker in makers:
                account = fixtures.fund_token_account(maker.pubkey(), base, per_maker * LOT_ATOMS)
                fixtures.approve_delegate(
                    account, maker, authority.pubkey(), 2 * per_maker * LOT_ATOMS, base
                )
            localnet.advance_slots(2)
            storage.store_orders(engine, signed)
            lease = storage.LeaseStore(engine, "bench").acquire(
                storage.market_key(market.market_id), 3600
            )
            assert lease is not None

            router = RpcRouter(RpcRouterConfig.from_urls(localnet.urls))
            launch(router)
            router_handle = ActorHandle(router.name)
            router_handle.attach(router.actor_inbox)
            clock, sink = ManualClock(), _Sink()
            monitor = OrderMonitor(engine, router_handle, sink, poll_interval_s=POLL_S, clock=clock)
            launch(monitor)
            handle = ActorHandle(monitor.name)
            handle.attach(monitor.actor_inbox)
            try:
                rig = _Rig(localnet, handle, clock, sink, judged, makers[0], base, lease)
                _measure(args, rig)
            finally:
                monitor.actor_ref.stop(timeout=10)
                router.actor_ref.stop(timeout=10)
        finally:
            engine.dispose()


@dataclass
class _Rig:
    """What a measurement drives: the monitor, its clock and sink, and the chain."""

    localnet: LocalnetServer
    monitor: ActorHandle
    clock: ManualClock
    sink: _Sink
    judged: _Judged
    depositor: Keypair
    base: MintFixture
    lease: storage.Lease


def _measure(args: argparse.Namespace, rig: _Rig) -> None:
    handle, clock, sink, judged = rig.monitor, rig.clock, rig.sink, rig.judged
    lease = rig.lease

    def state() -> MonitorState:
        answer: MonitorState = handle.ask(GetMonitorState()).get(timeout=30)
        return answer

    def settle(polls: int) -> MonitorState:
        pause = threading.Event()
        deadline = time.monotonic() + 120
        while True:
            now = state()
            if now.polls >= polls and now.answered_requests == now.account_requests:
                return now
            if time.monotonic() > deadline:
                raise SystemExit(f"the monitor did not finish poll {polls}: {now}")
            pause.wait(0.005)

    def poll(polls: int) -> tuple[float, int, MonitorState]:
        before_cpu, before_judged = _thread_cpu_s("OrderMonitor"), judged.orders
        if polls > 1:
            clock.advance(POLL_S)
        else:
            handle.tell(MarketsChanged(gained=(lease,), lost=()))
        now = settle(polls)
        return _thread_cpu_s("OrderMonitor") - before_cpu, judged.orders - before_judged, now

    first_s, first_judged, first = poll(1)
    steady: list[tuple[float, int]] = []
    for number in range(2, args.polls + 2):
        cpu_s, count, _ = poll(number)
        steady.append((cpu_s, count))
    rig.localnet.fixtures.fund_token_account(rig.depositor.pubkey(), rig.base, LOT_ATOMS)
    rig.localnet.advance_slots(2)
    deposit_s, deposit_judged, last = poll(args.polls + 2)

    steady_ms = sorted(cpu_s * 1000 for cpu_s, _ in steady)
    print(
        f"resting book: {args.orders} funded sells of {args.makers} makers, {args.db}; "
        f"OrderMonitor thread CPU per poll (poll -> its funding answers handled)"
    )
    print(
        f"  first poll (all read in full and judged):   {first_s * 1000:8.1f} ms, "
        f"{first_judged} orders judged, {first.funded} funded, {sink.told} told"
    )
    print(
        f"  {len(steady)} later polls, nothing changed:        "
        f"median {steady_ms[len(steady_ms) // 2]:8.1f} ms, min {steady_ms[0]:.1f}, "
        f"max {steady_ms[-1]:.1f}; orders judged per poll: "
        f"{sorted({count for _, count in steady})}"
    )
    print(
        f"  poll after one maker's deposit:             {deposit_s * 1000:8.1f} ms, "
        f"{deposit_judged} orders judged, {last.funded} funded"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--makers", type=int, default=30)
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    logger.remove()
    if args.orders < 1 or args.makers < 1 or args.polls < 1:
        parser.error("--orders, --makers and --polls must be at least 1")
    run(args)


if __name__ == "__main__":
    main()
