"""How long a settlement marker holds its rent, and the float that makes at 300 fills/s.

    python3 benchmarks/marker_lifetime_bench.py [--markers 30] [--slot-ms 40] [--fills-per-s 300]

A localnet ticks slots ``slot-ms`` apart (400 ms is a real cluster; faster here
so a run takes seconds); every timer of the node is scaled by the same factor
(BlockhashActor refresh 2 s and max age 10 s, MarkerReclaimActor round 10 s), so
lifetimes *in slots* are what a node on a real cluster would see, and seconds
are given at 400 ms per slot.

Each marker is created as a settlement attempt creates it: a transaction with
``CreateAccountWithSeed`` signed with the BlockhashActor's cached blockhash, its
``lastValidBlockHeight`` recorded as the attempt's; once it lands, its
settlement is written confirmed. The real MarkerReclaimActor then closes it.
Lifetime = slot of the reclaim transaction (rent back to the fee payer) - slot
of the create. It prints figures and never asserts on them.

The formula (blocks; one block per slot when no slot is skipped):

    lifetime = (lvbh - landing)           150 minus the blockhash's age and the landing delay
             + RECLAIM_MARGIN_BLOCKS + 1  300: every attempt past its lvbh by the margin
             + finalization depth         ~32: the height is read at finalized
             + round wait                 half a round interval on average (10 s = 25 slots)
             + reclaim landing            ~1-2 slots
    float    = fills/s x lifetime_s x 890,880 lamports (one marker per settled fill)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

import storage
from actors.blockhash import BlockhashActor, BlockhashClient, BlockhashSettings
from actors.lock_actor import MarketsChanged
from actors.marker_reclaim import MarkerReclaimActor, ReclaimSettings, RoundEnded
from actors.rpc import RpcClient, RpcRouter, RpcRouterConfig
from actors.settlement import signer_map
from localnet import LocalnetConfig, LocalnetServer
from market import Market, sign_market
from market.marker import MARKER_RENT_LAMPORTS, marker_create_instruction, marker_for
from storage.models import Fill, Order, Settlement, SettlementAttempt, SettlementMarker, table_of
from supervision import ActorHandle, launch

REAL_SLOT_S = 0.4


def _handle(actor: Any) -> ActorHandle:
    handle = ActorHandle(actor.name)
    handle.attach(actor.actor_inbox)
    return handle


def _seed(engine: Any, market: Market) -> None:
    storage.insert_market(engine, market)
    with storage.write_transaction(engine) as connection:
        for order_id, side in (("maker", "sell"), ("taker", "buy")):
            connection.execute(
                insert(table_of(Order)).values(
                    id=order_id,
                    market_id=market.market_id,
                    maker=str(market.fee_payer),
                    side=side,
                    price_atoms=100,
                    size_atoms=10,
                    remaining_atoms=10,
                    pay_account=str(market.fee_payer),
                    receive_account=str(market.fee_payer),
                    nonce=1 if side == "sell" else 2,
                    signature=f"sig-{order_id}",
                )
            )


def _confirmed(engine: Any, market_id: str, fill_id: str, address: str, lvbh: int) -> None:
    with storage.write_transaction(engine) as connection:
        connection.execute(
            insert(table_of(Fill)).values(
                id=fill_id,
                market_id=market_id,
                maker_order_id="maker",
                taker_order_id="taker",
                price_atoms=100,
                base_atoms=1,
                quote_atoms=100,
                fencing_token=1,
            )
        )
        connection.execute(
            insert(table_of(Settlement)).values(
                id=fill_id, fill_id=fill_id, market_id=market_id, status="confirmed"
            )
        )
        connection.execute(
            insert(table_of(SettlementAttempt)).values(
                settlement_id=fill_id,
                attempt_number=1,
                signature=f"sig-{fill_id}",
                raw_transaction=b"x",
                blockhash="11111111111111111111111111111111",
                last_valid_block_height=lvbh,
                claim_token=1,
                state="confirmed",
                marker_address=address,
            )
        )


def _landed_slot(rpc: RpcClient, signature: str, timeout_s: float) -> int | None:
    outcome = rpc.request(
        "getSignatureStatuses", [[signature], {"searchTransactionHistory": True}]
    ).get(timeout=timeout_s)
    value = getattr(outcome, "result", {}).get("value", [None])[0]
    return int(value["slot"]) if value else None


def run(markers: int, slot_ms: int, fills_per_s: float) -> None:
    scale = slot_ms / (REAL_SLOT_S * 1000)
    config = LocalnetConfig(port=0, endpoints=1, slot_ms=slot_ms)
    with LocalnetServer(config) as localnet, tempfile.TemporaryDirectory() as folder:
        engine = storage.open_engine(storage.sqlite_url(Path(folder) / "bench.db"))
        storage.upgrade(engine)
        fee_payer, authority = localnet.fixtures.fund_wallet(), Keypair()
        market = Market(
            market_id="BENCH",
            base_mint=Pubkey.new_unique(),
            base_decimals=9,
            quote_mint=Pubkey.new_unique(),
            quote_decimals=6,
            lot_size_atoms=1,
            tick_size_atoms=1,
            settlement_authority=authority.pubkey(),
            fee_payer=fee_payer.pubkey(),
        )
        market = replace(market, definition_signature=sign_market(market, authority))
        _seed(engine, market)
        lease = storage.LeaseStore(engine, "bench").acquire(storage.market_key("BENCH"), 3600)
        assert lease is not None
        router = RpcRouter(RpcRouterConfig.from_urls(localnet.urls))
        launch(router)
        blockhash = BlockhashActor(
            _handle(router), BlockhashSettings(refresh_interval_s=2 * scale, max_age_s=10 * scale)
        )
        launch(blockhash)
        rounds: list[RoundEnded] = []
        reclaim = MarkerReclaimActor(
            engine,
            _handle(router),
            _handle(blockhash),
            signer_map(fee_payer, authority),
            settings=ReclaimSettings(interval_s=10 * scale),
            listeners=(rounds.append,),
        )
        launch(reclaim)
        _handle(reclaim).tell(MarketsChanged((lease,), ()))
        rpc, hashes = RpcClient(_handle(router)), BlockhashClient(_handle(blockhash))
        pause = threading.Event()
        created: dict[str, tuple[str, int]] = {}  # fill id -> (create signature, lvbh)
        for number in range(markers):
            fill_id = f"fill-{number:05d}"
            fresh = hashes.latest().get(timeout=10)
            marker = marker_for(authority, fill_id)
            message = Message.new_with_blockhash(
                [
                    marker_create_instruction(
                        fee_payer=fee_payer.pubkey(),
                        settlement_authority=authority.pubkey(),
                        marker=marker,
                    )
                ],
                fee_payer.pubkey(),
                Hash.from_string(fresh.blockhash),
            )
            transaction = VersionedTransaction(message, [fee_payer, authority])
            rpc.send_transaction(bytes(transaction), skip_preflight=True).get(timeout=10)
            created[fill_id] = (str(transaction.signatures[0]), fresh.last_valid_block_height)
            pause.wait(slot_ms / 1000 * 3)  # spread over the blockhash's life
        landed: dict[str, int] = {}
        for fill_id, (signature, lvbh) in created.items():
            for _ in range(200):
                slot = _landed_slot(rpc, signature, 10)
                if slot is not None:
                    break
                pause.wait(slot_ms / 1000)
            assert slot is not None, f"{fill_id} did not land"
            landed[fill_id] = slot
            address = str(marker_for(authority, fill_id).address)
            _confirmed(engine, "BENCH", fill_id, address, lvbh)
        rows = _reclaimed_markers(engine, markers, pause, slot_ms)
        lifetimes, slack = [], []
        for settlement_id, _, signature in rows:
            reclaim_slot = _landed_slot(rpc, signature, 10)
            assert reclaim_slot is not None
            lifetimes.append(reclaim_slot - landed[settlement_id])
            slack.append(created[settlement_id][1] - landed[settlement_id])
        for actor in (reclaim, blockhash, router):
            actor.actor_ref.stop(timeout=10)
        engine.dispose()
    print(f"markers: {markers}, localnet slot: {slot_ms} ms (node timers scaled x{scale:.2f})")
    _report(lifetimes, slack, fills_per_s)


def _reclaimed_markers(
    engine: Engine, markers: int, pause: threading.Event, slot_ms: int
) -> list[Any]:
    """The marker rows (settlement id, state, reclaim signature), once all ``markers``
    are reclaimed (or after 10,000 looks)."""
    table = table_of(SettlementMarker)
    for _ in range(10_000):
        with storage.read_transaction(engine) as connection:
            rows = connection.execute(
                select(table.c.settlement_id, table.c.state, table.c.reclaim_signature)
            ).all()
        if len(rows) == markers and all(row[1] == "reclaimed" for row in rows):
            break
        pause.wait(slot_ms / 1000 * 5)
    return list(rows)


def _report(lifetimes: list[int], slack: list[int], fills_per_s: float) -> None:
    mean_slots = statistics.mean(lifetimes)
    mean_s = mean_slots * REAL_SLOT_S
    alive = fills_per_s * mean_s
    mean_slack = statistics.mean(slack)
    print(f"lvbh - landing slot:   mean {mean_slack:.1f}, min {min(slack)}, max {max(slack)}")
    print(
        f"lifetime (slots):      mean {mean_slots:.1f}, min {min(lifetimes)}, max {max(lifetimes)}"
    )
    print(f"lifetime at 400 ms:    mean {mean_s:.1f} s, max {max(lifetimes) * REAL_SLOT_S:.1f} s")
    print(f"markers alive at {fills_per_s:g} fills/s: {alive:,.0f}")
    print(
        f"rent float: {alive * MARKER_RENT_LAMPORTS:,.0f} lamports = "
        f"{alive * MARKER_RENT_LAMPORTS / 1e9:,.2f} SOL"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markers", type=int, default=30)
    parser.add_argument("--slot-ms", type=int, default=40)
    parser.add_argument("--fills-per-s", type=float, default=300.0)
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    run(args.markers, args.slot_ms, args.fills_per_s)


if __name__ == "__main__":
    main()
