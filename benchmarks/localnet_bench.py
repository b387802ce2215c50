"""Settlement-shaped transactions per second: localnet over HTTP vs LiteSVM in-process.

    python3 benchmarks/localnet_bench.py [--transactions 5000] [--per-request 1000] [--slot-ms 100]

Each transaction is what a settlement sends: a compute-unit price, two
``TransferChecked`` legs signed by the delegate, and a memo with the fill id.
The same signed transactions are

- sent to localnet over HTTP (the server in its own process, slots on a real
  timer) and counted when ``getSignatureStatuses`` reports them confirmed;
- executed by a fresh LiteSVM in this process, holding the same accounts,
  right after each HTTP variant: the ceiling every settlement benchmark in this
  project is measured against.

Four ways of sending are measured, because the client's cost dominates a
one-request-per-transaction run. The machine has two cores shared by client,
server and anything else running: read the ratios, which compare runs made
moments apart, rather than the absolute figures. It prints figures and never
asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

# Run from a checkout like bin/crank-node: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import httpx2
from loguru import logger
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Processed
from solana.rpc.models import TxOpts
from solders.account import Account
from solders.compute_budget import set_compute_unit_price
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import transfer_checked
from spl.token.models import TransferCheckedParams

from localnet import LocalnetConfig, LocalnetServer
from localnet.fixture_spec import FixtureSpec, apply_fixture_spec

BASE_DECIMALS, QUOTE_DECIMALS = 9, 6
STATUS_BATCH = 256
FIXTURES = FixtureSpec.parse(
    wallets=["settler:1000", "seller", "buyer"],
    mints=[f"base:{BASE_DECIMALS}", f"quote:{QUOTE_DECIMALS}"],
    token_accounts=[
        "seller:base:1000000000000000",
        "buyer:quote:1000000000000000",
        "seller:quote",
        "buyer:base",
    ],
    approvals=["seller:base:settler:1000000000000000", "buyer:quote:settler:1000000000000000"],
)


@dataclass(frozen=True)
class Market:
    """Addresses and the delegate's keypair, as the server's fixtures made them."""

    settler: Keypair
    base: Pubkey
    quote: Pubkey
    seller_base: Pubkey
    seller_quote: Pubkey
    buyer_base: Pubkey
    buyer_quote: Pubkey


def serve(slot_ms: int, keys_dir: str, ready: Any, stop: Any) -> None:
    """The server process: a localnet with the market's fixtures, until told to stop."""
    logger.remove()  # one log line per landed transaction would measure the terminal
    config = LocalnetConfig(port=0, slot_ms=slot_ms)
    with LocalnetServer(config) as localnet:
        report = apply_fixture_spec(localnet.fixtures, FIXTURES, Path(keys_dir))
        ready.send({"url": localnet.url, **report})
        stop.wait()


def market_from(report: dict[str, Any], keys_dir: Path) -> Market:
    secret = json.loads((keys_dir / "settler.json").read_text())
    accounts = {name: Pubkey.from_string(key) for name, key in report["token_accounts"].items()}
    return Market(
        settler=Keypair.from_bytes(bytes(secret)),
        base=Pubkey.from_string(report["mints"]["base"]["address"]),
        quote=Pubkey.from_string(report["mints"]["quote"]["address"]),
        seller_base=accounts["seller:base"],
        seller_quote=accounts["seller:quote"],
        buyer_base=accounts["buyer:base"],
        buyer_quote=accounts["buyer:quote"],
    )


def settlement(market: Market, fill_id: int, blockhash: Hash) -> VersionedTransaction:
    delegate = market.settler.pubkey()

    def leg(source: Pubkey, mint: Pubkey, dest: Pubkey, amount: int, decimals: int) -> Any:
        return transfer_checked(
            TransferCheckedParams(
                program_id=TOKEN_PROGRAM_ID,
                source=source,
                mint=mint,
                dest=dest,
                owner=delegate,
                amount=amount,
                decimals=decimals,
            )
        )

    memo = MemoParams(
        program_id=MEMO_PROGRAM_ID, signer=delegate, message=f"fill:{fill_id}".encode()
    )
    instructions = [
        set_compute_unit_price(1_000),
        leg(market.seller_base, market.base, market.buyer_base, 1_000, BASE_DECIMALS),
        leg(market.buyer_quote, market.quote, market.seller_quote, 30, QUOTE_DECIMALS),
        create_memo(memo),
    ]
    legacy = Transaction.new_signed_with_payer(instructions, delegate, [market.settler], blockhash)
    return VersionedTransaction.from_legacy(legacy)


async def fetch_state(url: str, market: Market) -> tuple[Hash, dict[Pubkey, Account]]:
    """The blockhash to sign with, and every account the settlements touch."""
    addresses = [
        market.settler.pubkey(),
        market.base,
        market.quote,
        market.seller_base,
        market.seller_quote,
        market.buyer_base,
        market.buyer_quote,
    ]
    async with AsyncClient(url, timeout=10) as rpc:
        blockhash = (await rpc.get_latest_blockhash(Processed)).value.blockhash
        accounts = (await rpc.get_multiple_accounts(addresses, Processed)).value
    return blockhash, {key: acc for key, acc in zip(addresses, accounts, strict=True) if acc}


def in_process(
    transactions: Sequence[VersionedTransaction], accounts: dict[Pubkey, Account]
) -> float:
    """tx/s of a default LiteSVM (signature checks on) executing the same transactions."""
    svm = LiteSVM().with_blockhash_check(False)  # signed on localnet's blockhash
    for address, account in accounts.items():
        svm.set_account(address, account)
    started = time.perf_counter()
    for transaction in transactions:
        if isinstance(svm.send_transaction(transaction), FailedTransactionMetadata):
            raise SystemExit("in-process execution failed: the benchmark is broken")
    return len(transactions) / (time.perf_counter() - started)


async def wait_confirmed(http: httpx2.AsyncClient, url: str, signatures: list[str]) -> None:
    pending = list(signatures)
    while pending:
        chunks = [pending[i : i + STATUS_BATCH] for i in range(0, len(pending), STATUS_BATCH)]
        still: list[str] = []
        for chunk in chunks:
            body = {"jsonrpc": "2.0", "id": 1, "method": "getSignatureStatuses", "params": [chunk]}
            statuses = (await http.post(url, json=body)).json()["result"]["value"]
            still += [
                sig for sig, status in zip(chunk, statuses, strict=True) if not _confirmed(status)
            ]
        pending = still
        if pending:
            await asyncio.sleep(0.005)  # a polling client's pause between rounds


def _confirmed(status: dict[str, Any] | None) -> bool:
    if status is None:
        return False
    if status["err"] is not None:
        raise SystemExit(f"a settlement failed on localnet: {status['err']}")
    return status["confirmationStatus"] in ("confirmed", "finalized")


async def over_http_solana_py(
    url: str, transactions: Sequence[VersionedTransaction], concurrency: int
) -> float:
    """solana-py's send_raw_transaction with preflight, ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)
    options = TxOpts(skip_confirmation=True, preflight_commitment=Processed)
    async with AsyncClient(url, timeout=30) as rpc, httpx2.AsyncClient(timeout=30) as http:

        async def one(transaction: VersionedTransaction) -> Signature:
            async with gate:
                return (await rpc.send_raw_transaction(bytes(transaction), options)).value

        started = time.perf_counter()
        signatures = await asyncio.gather(*(one(tx) for tx in transactions))
        await wait_confirmed(http, url, [str(sig) for sig in signatures])
        return len(transactions) / (time.perf_counter() - started)


async def over_http_single(
    url: str, transactions: Sequence[VersionedTransaction], in_flight: int
) -> float:
    """One sendTransaction per HTTP request from a lean client: the server's per-request cost."""
    encoded = [base64.b64encode(bytes(tx)).decode() for tx in transactions]
    config = {"encoding": "base64", "preflightCommitment": "processed"}
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


async def over_http_batches(
    url: str,
    transactions: Sequence[VersionedTransaction],
    batch: int,
    in_flight: int,
    *,
    skip_preflight: bool,
) -> float:
    """JSON-RPC batches of ``batch`` sendTransaction calls, ``in_flight`` requests at once."""
    encoded = [base64.b64encode(bytes(tx)).decode() for tx in transactions]
    config = {
        "encoding": "base64",
        "preflightCommitment": "processed",
        "skipPreflight": skip_preflight,
    }
    gate = asyncio.Semaphore(in_flight)
    async with httpx2.AsyncClient(timeout=30) as http:

        async def one(first: int) -> list[str]:
            body = [
                {"jsonrpc": "2.0", "id": n, "method": "sendTransaction", "params": [tx, config]}
                for n, tx in enumerate(encoded[first : first + batch])
            ]
            async with gate:
                answers = (await http.post(url, json=body)).json()
            return [answer["result"] for answer in answers]

        started = time.perf_counter()
        sent = await asyncio.gather(*(one(first) for first in range(0, len(encoded), batch)))
        await wait_confirmed(http, url, [signature for chunk in sent for signature in chunk])
        return len(transactions) / (time.perf_counter() - started)


class ServerProcess:
    """The localnet in a process of its own, so client and server do not share one GIL."""

    def __init__(self, slot_ms: int, keys_dir: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        receiving, sending = context.Pipe(duplex=False)
        self._process = context.Process(
            target=serve, args=(slot_ms, str(keys_dir), sending, self._stop)
        )
        self._process.start()
        if not receiving.poll(60):
            self.close()
            raise SystemExit("the localnet process did not start within 60 s")
        self.report: dict[str, Any] = receiving.recv()
        receiving.close()
        sending.close()

    def close(self) -> None:
        self._stop.set()
        self._process.join(30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


class Variant(NamedTuple):
    name: str
    send: Callable[[str, Sequence[VersionedTransaction]], Awaitable[float]]
    # One request per transaction is far slower: it gets fewer transactions, so that the
    # run ends well inside a blockhash's 151-slot validity.
    per_request: bool


# Each variant gets its own transactions: a resend of another variant's would be deduplicated.
VARIANTS: tuple[Variant, ...] = (
    Variant(
        "solana-py send_raw_transaction, preflight, 64 in flight",
        lambda url, txs: over_http_solana_py(url, txs, 64),
        per_request=True,
    ),
    Variant(
        "one request per tx (aiohttp client), preflight, 64 in flight",
        lambda url, txs: over_http_single(url, txs, 64),
        per_request=True,
    ),
    Variant(
        "JSON-RPC batches of 100, preflight, 4 in flight",
        lambda url, txs: over_http_batches(url, txs, 100, 4, skip_preflight=False),
        per_request=False,
    ),
    Variant(
        "JSON-RPC batches of 100, skipPreflight, 4 in flight",
        lambda url, txs: over_http_batches(url, txs, 100, 4, skip_preflight=True),
        per_request=False,
    ),
)


class Row(NamedTuple):
    name: str
    transactions: int
    http_rate: float
    in_process_rate: float


def run_variants(
    url: str, market: Market, counts: tuple[int, int], accounts: dict[Pubkey, Account]
) -> list[Row]:
    """Each variant on fresh transactions (signed on a fresh blockhash just before), then the
    very same transactions in-process right after, so both figures see the same machine load."""
    rows = []
    for number, variant in enumerate(VARIANTS):
        count = counts[0] if variant.per_request else counts[1]
        blockhash, _ = asyncio.run(fetch_state(url, market))
        first = number * 10**7
        transactions = [settlement(market, fill, blockhash) for fill in range(first, first + count)]
        http_rate = asyncio.run(variant.send(url, transactions))
        rows.append(Row(variant.name, count, http_rate, in_process(transactions, accounts)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=5000, help="per batched variant")
    parser.add_argument("--per-request", type=int, default=1000, help="per one-by-one variant")
    parser.add_argument("--slot-ms", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        keys_dir = Path(scratch)
        server = ServerProcess(args.slot_ms, keys_dir)
        try:
            url, market = server.report["url"], market_from(server.report, keys_dir)
            _, accounts = asyncio.run(fetch_state(url, market))
            counts = (args.per_request, args.transactions)
            rows = run_variants(url, market, counts, accounts)
        finally:
            server.close()
    print(f"settlement transactions (TransferChecked x2 + memo); localnet slot {args.slot_ms} ms")
    print(f"  {'variant (HTTP)':<62} {'txs':>5} {'HTTP':>6} {'LiteSVM':>8}  ratio")
    for row in rows:
        ratio = row.http_rate / row.in_process_rate
        print(
            f"  {row.name:<62} {row.transactions:5d} {row.http_rate:6.0f}"
            f" {row.in_process_rate:8.0f}  {ratio:.2f}x"
        )
    print("tx/s. HTTP: first send -> last 'confirmed' status, server in its own process.")
    print("LiteSVM: the same signed transactions, in-process, on the accounts they started from.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
