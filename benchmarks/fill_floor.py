"""The work one settled fill needs, done by the libraries alone: a floor under the node's CPU.

    python3 benchmarks/fill_floor.py [--fills 2000] [--batch 100]

Issue 20 asks for at most 0.3 ms of the node's CPU per settled fill in a burst and 0.5
ms at a steady rate. This measures what no design of the node can leave out, with no
actors, no SQLAlchemy, no HTTP client and no logging around it, batched as a burst
batches at best:

- **verify**: each maker's order signature checked once (two orders a fill; ed25519
  over the order's canonical encoding, as ``market.signing`` does);
- **build and sign**: ``market.build_settlement_transaction``, the node's own function
  (the marker seed's ed25519 signature, the message, and the transaction's
  signatures: one where the settlement authority pays the fees, as in
  ``pipeline_bench.py`` and the demo, two with a fee payer of its own,
  ``--fee-payer``);
- **send**: the transaction base64-encoded in a JSON-RPC ``sendTransaction``, ten to an
  HTTP body (the node's default ``rpc_batch_max``), encoded and its answer decoded;
- **status**: its share of a ``getSignatureStatuses`` round of ``--batch`` signatures,
  request encoded and answer decoded;
- **rows**: the rows the node writes per fill (``pipeline_bench.py``'s executemany
  counts: a fill, two orders' remaining sizes, a settlement written and moved twice,
  an attempt written and confirmed) and the evidence read before signing (the fill
  and its two orders), in ``sqlite3`` directly, four transactions per batch, on tables
  with a primary key and nothing else (the node's have more columns and indexes), WAL
  and ``synchronous = NORMAL`` as the node sets them.

Every part is a lower bound of what the node does for it. Prints figures only.
"""

from __future__ import annotations

import argparse
import base64
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from market import Fill, Market, Order, Side, SignedOrder, build_settlement_transaction, sign_order

SEND_BATCH = 10  # the node's default rpc_batch_max
ORDER_BYTES = 200  # about a stored order's signed terms


@dataclass(frozen=True)
class Floor:
    """Microseconds of CPU per fill, by part."""

    verify_us: float
    build_us: float
    signatures: int  # ed25519 signatures made per fill: the marker seed's and the transaction's
    send_us: float
    status_us: float
    rows_us: float

    @property
    def total_us(self) -> float:
        return self.verify_us + self.build_us + self.send_us + self.status_us + self.rows_us

    def parts(self) -> list[tuple[str, float]]:
        return [
            ("verify two order signatures", self.verify_us),
            (f"build and sign the transaction: {self.signatures} signatures", self.build_us),
            (f"send: base64 + JSON-RPC, {SEND_BATCH} a body", self.send_us),
            ("status: its share of a status round", self.status_us),
            ("rows: 8 written, 3 read, sqlite3 directly", self.rows_us),
        ]


@dataclass(frozen=True)
class _Pair:
    sell: SignedOrder
    buy: SignedOrder
    fill: Fill


def measure(fills: int = 2000, batch: int = 100, *, fee_payer: bool = False) -> Floor:
    """The floor per fill, measured over ``fills`` fills in batches of ``batch``;
    ``fee_payer``: the fees paid by a key of their own, not the settlement authority."""
    if fills < 1 or batch < 1:
        raise ValueError(f"fills and batch must be at least 1, got {fills} and {batch}")
    authority = Keypair()
    payer = Keypair() if fee_payer else authority
    market = Market(
        market_id="FLOOR",
        base_mint=Pubkey.new_unique(),
        base_decimals=6,
        quote_mint=Pubkey.new_unique(),
        quote_decimals=6,
        lot_size_atoms=1_000,
        tick_size_atoms=10,
        settlement_authority=authority.pubkey(),
        fee_payer=payer.pubkey(),
    )
    pairs = [_pair(market, number) for number in range(1, fills + 1)]
    blockhash = Hash.new_unique()

    def verify() -> None:
        for pair in pairs:
            for signed in (pair.sell, pair.buy):
                if not signed.signature.verify(signed.order.maker, signed.order.encode()):
                    raise AssertionError("a freshly signed order failed to verify")

    raw: list[bytes] = []

    def build() -> None:
        for pair in pairs:
            transaction = build_settlement_transaction(
                market,
                pair.fill,
                fee_payer=payer,
                settlement_authority=authority,
                recent_blockhash=blockhash,
                compute_unit_price_micro_lamports=1_000,
            )
            raw.append(transaction.raw_bytes)

    verify_s = _timed(verify)
    build_s = _timed(build)
    send_s = _timed(lambda: _send(raw))
    status_s = _timed(lambda: _statuses(len(raw), batch))
    with tempfile.TemporaryDirectory(prefix="fill-floor-") as scratch:
        rows_s = _rows(Path(scratch) / "floor.sqlite", pairs, raw, batch)
    per_fill = 1e6 / fills
    # The transaction's signatures and the marker seed's.
    signatures = len(VersionedTransaction.from_bytes(raw[0]).signatures) + 1
    return Floor(
        verify_us=verify_s * per_fill,
        build_us=build_s * per_fill,
        signatures=signatures,
        send_us=send_s * per_fill,
        status_us=status_s * per_fill,
        rows_us=rows_s * per_fill,
    )


def _pair(market: Market, number: int) -> _Pair:
    sell = _signed(market, Side.SELL, number)
    buy = _signed(market, Side.BUY, number)
    fill = Fill.between(market, number, sell.order, buy.order, market.lot_size_atoms)
    return _Pair(sell, buy, fill)


def _signed(market: Market, side: Side, number: int) -> SignedOrder:
    maker = Keypair()
    terms = Order(
        market_id=market.market_id,
        side=side,
        price_atoms=100 * market.tick_size_atoms,
        size_atoms=market.lot_size_atoms,
        maker=maker.pubkey(),
        pay_account=Pubkey.new_unique(),
        receive_account=Pubkey.new_unique(),
        client_order_id=number,
        expiry_s=4_000_000_000,
        nonce=number,
    )
    return sign_order(terms, maker)


def _timed(work: Callable[[], object]) -> float:
    """CPU seconds of this thread spent in ``work``."""
    started = time.thread_time()
    work()
    return time.thread_time() - started


def _send(raw: Sequence[bytes]) -> None:
    for start in range(0, len(raw), SEND_BATCH):
        body = [
            {
                "jsonrpc": "2.0",
                "id": start + k,
                "method": "sendTransaction",
                "params": [
                    base64.b64encode(transaction).decode(),
                    {"encoding": "base64", "skipPreflight": True},
                ],
            }
            for k, transaction in enumerate(raw[start : start + SEND_BATCH])
        ]
        json.dumps(body).encode()
        answer = [{"jsonrpc": "2.0", "id": request["id"], "result": "1" * 88} for request in body]
        json.loads(json.dumps(answer))


def _statuses(count: int, batch: int) -> None:
    for start in range(0, count, batch):
        size = min(batch, count - start)
        request = {
            "jsonrpc": "2.0",
            "id": start,
            "method": "getSignatureStatuses",
            "params": [["1" * 88] * size],
        }
        json.dumps(request)
        status = {"slot": 1, "confirmations": None, "err": None, "status": {"Ok": None}}
        answer = {"jsonrpc": "2.0", "id": start, "result": {"value": [status] * size}}
        json.loads(json.dumps(answer))


_TABLES = (
    "CREATE TABLE orders (order_id TEXT PRIMARY KEY, market_id TEXT, status TEXT,"
    " remaining INTEGER, body BLOB)",
    "CREATE TABLE fills (fill_id TEXT PRIMARY KEY, market_id TEXT, sell_id TEXT,"
    " buy_id TEXT, price INTEGER, base INTEGER, quote INTEGER, created_at TEXT)",
    "CREATE TABLE settlements (fill_id TEXT PRIMARY KEY, status TEXT, token INTEGER,"
    " updated_at TEXT)",
    "CREATE TABLE attempts (signature TEXT PRIMARY KEY, fill_id TEXT, status TEXT,"
    " last_valid INTEGER, tx BLOB)",
)


def _rows(path: Path, pairs: Sequence[_Pair], raw: Sequence[bytes], batch: int) -> float:
    """CPU seconds to write and read one fill's rows, ``batch`` fills a transaction step."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    for table in _TABLES:
        connection.execute(table)
    body = bytes(ORDER_BYTES)
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO orders VALUES (?, 'FLOOR', 'open', 1000, ?)",
        [(signed.order.order_id, body) for pair in pairs for signed in (pair.sell, pair.buy)],
    )
    connection.execute("COMMIT")
    now = "2026-12-07T00:00:00.000000+00:00"
    started = time.thread_time()
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        transactions = raw[start : start + batch]
        fill_ids = [(pair.fill.fill_id,) for pair in chunk]
        order_ids = [(pair.sell.order_id,) for pair in chunk] + [
            (pair.buy.order_id,) for pair in chunk
        ]
        # The match write: fills and the orders' remaining sizes.
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO fills VALUES (?, 'FLOOR', ?, ?, 1000, 1000, 1000, ?)",
            [(pair.fill.fill_id, pair.sell.order_id, pair.buy.order_id, now) for pair in chunk],
        )
        connection.executemany(
            "UPDATE orders SET remaining = 0, status = 'filled' WHERE order_id = ?", order_ids
        )
        connection.execute("COMMIT")
        # The claim: a settlement row per fill.
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO settlements VALUES (?, 'claimed', 1, ?)",
            [(fill_id, now) for (fill_id,) in fill_ids],
        )
        connection.execute("COMMIT")
        # The evidence read before signing, then the attempts written.
        marks = ",".join("?" * len(chunk))
        read = connection.execute(
            f"SELECT * FROM fills WHERE fill_id IN ({marks})", [f for (f,) in fill_ids]
        ).fetchall()
        read += connection.execute(
            f"SELECT * FROM orders WHERE order_id IN ({marks},{marks})", [o for (o,) in order_ids]
        ).fetchall()
        if len(read) != 3 * len(chunk):
            raise AssertionError(f"the evidence read found {len(read)} rows")
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO attempts VALUES (?, ?, 'sent', 1000, ?)",
            [
                (f"sig-{pair.fill.fill_id}", pair.fill.fill_id, transaction)
                for pair, transaction in zip(chunk, transactions, strict=True)
            ],
        )
        connection.executemany(
            "UPDATE settlements SET status = 'sent', updated_at = ? WHERE fill_id = ?",
            [(now, fill_id) for (fill_id,) in fill_ids],
        )
        connection.execute("COMMIT")
        # The confirmation.
        connection.execute("BEGIN")
        connection.executemany(
            "UPDATE attempts SET status = 'confirmed' WHERE signature = ?",
            [(f"sig-{fill_id}",) for (fill_id,) in fill_ids],
        )
        connection.executemany(
            "UPDATE settlements SET status = 'confirmed', updated_at = ? WHERE fill_id = ?",
            [(now, fill_id) for (fill_id,) in fill_ids],
        )
        connection.execute("COMMIT")
    elapsed = time.thread_time() - started
    connection.close()
    return elapsed


def print_floor(floor: Floor) -> None:
    for label, micros in floor.parts():
        print(f"  {label:<46} {micros:7.0f} us")
    print(f"  {'floor per fill, all parts':<46} {floor.total_us:7.0f} us")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100, help="fills a transaction step")
    parser.add_argument(
        "--fee-payer",
        action="store_true",
        help="fees paid by a key of their own (one more signature a fill)",
    )
    args = parser.parse_args(argv)
    try:
        floor = measure(args.fills, args.batch, fee_payer=args.fee_payer)
    except ValueError as error:
        parser.error(str(error))
    print(f"the work one fill needs, libraries alone ({args.fills} fills, {args.batch} a batch)")
    print_floor(floor)
    for target_ms in (0.3, 0.5):
        share = floor.total_us / (target_ms * 1000)
        print(f"  share of a {target_ms} ms per fill target: {share:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
