"""A desk for order intake tests: a market on a real localnet, a real database, a real
RpcRouter, OrderIntake behind the node's real HTTP server, and the CLI pointed at it.

The maker has a base and a quote token account (associated, empty: intake checks mint
and owner, funding is OrderMonitor's job); a stranger has a quote account of their own.
The HTTP server is :class:`crank_node.node.health.HealthServer` over a stand-in node that has
nothing but ``intake``; ``Desk.url`` is its public intake listener.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import select
from sqlalchemy.engine import Engine

import storage
from actors.rpc import RpcClient, RpcRouter, RpcRouterConfig
from crank_node.cli.main import build_parser
from crank_node.node.health import HealthServer
from crank_node.node.intake import OrderIntake
from localnet import LocalnetServer
from market import Market, Order, Side, SignedOrder, sign_order
from storage.models import Order as OrderRow
from supervision import ActorHandle, launch

LOT_ATOMS = 10**6
TICK_ATOMS = 1_000
PRICE_ATOMS = 10 * TICK_ATOMS
SIZE_ATOMS = 3 * LOT_ATOMS
MARKET_ID = "BASE-QUOTE"
HTTP_TIMEOUT_S = 10.0


@dataclass
class StandInNode:
    """What HealthServer reads of the node: its ``intake``, and for the operator
    listener its id and a health answer (always healthy: these tests are about HTTP)."""

    intake: OrderIntake | None
    settings: Any = field(default_factory=lambda: SimpleNamespace(instance_id="stand-in"))

    def health(self) -> tuple[str, dict[str, Any]]:
        return "healthy", {}

    def status(self) -> dict[str, Any]:
        return {"node_id": "stand-in"}


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def error_line(self) -> str:
        """The command's own error line (not a log line)."""
        lines = [line for line in self.err.splitlines() if line.startswith("crank-node ")]
        assert len(lines) == 1, self.err
        return lines[0]


@dataclass
class Desk:
    localnet: LocalnetServer
    engine: Engine
    market: Market
    maker: Keypair
    maker_file: Path
    base_account: Pubkey  # the maker's
    quote_account: Pubkey  # the maker's
    stranger_quote_account: Pubkey
    intake: OrderIntake
    server: HealthServer
    capsys: pytest.CaptureFixture[str]
    tmp_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.intake_port}"

    # -- orders ---------------------------------------------------------------------------

    def buy(self, **changes: Any) -> Order:
        """A valid buy of 3 lots at 10 ticks, paid from the maker's quote account."""
        order = Order(
            market_id=MARKET_ID,
            side=Side.BUY,
            price_atoms=PRICE_ATOMS,
            size_atoms=SIZE_ATOMS,
            maker=self.maker.pubkey(),
            pay_account=self.quote_account,
            receive_account=self.base_account,
            client_order_id=1,
            expiry_s=int(time.time()) + 3_600,
            nonce=1,
        )
        return replace(order, **changes)

    def signed(self, **changes: Any) -> SignedOrder:
        return sign_order(self.buy(**changes), self.maker)

    def orders_table(self) -> list[tuple[Any, ...]]:
        """Every row of the orders table, every column: to check nothing was stored."""
        with storage.read_transaction(self.engine) as connection:
            rows = connection.execute(select(OrderRow.__table__).order_by(OrderRow.id)).all()
        return [tuple(row) for row in rows]

    # -- HTTP -------------------------------------------------------------------------------

    def request(self, method: str, path: str, document: Any = None) -> tuple[int, Any]:
        """(status, JSON body) of one request to the node's HTTP server."""
        data = None if document is None else json.dumps(document).encode()
        return self.raw_request(method, path, data)

    def raw_request(self, method: str, path: str, data: bytes | None) -> tuple[int, Any]:
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def post(self, path: str, document: Any) -> tuple[int, Any]:
        return self.request("POST", path, document)

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    # -- CLI ----------------------------------------------------------------------------------

    def cli(self, *argv: str) -> CliResult:
        """``crank-node ARGV`` in this process (its own parser and handler), output captured."""
        return run_cli(self.capsys, *argv)

    def submit_argv(self, order: Order, keypair_file: Path | None = None) -> list[str]:
        """``order submit`` flags for ``order`` (its maker is the keypair file's)."""
        return [
            "order",
            "submit",
            "--url",
            self.url,
            "--market",
            order.market_id,
            "--side",
            order.side.value,
            "--price-atoms",
            str(order.price_atoms),
            "--size-atoms",
            str(order.size_atoms),
            "--pay-account",
            str(order.pay_account),
            "--receive-account",
            str(order.receive_account),
            "--client-order-id",
            str(order.client_order_id),
            "--expiry-s",
            str(order.expiry_s),
            "--nonce",
            str(order.nonce),
            "--keypair",
            str(keypair_file or self.maker_file),
        ]

    def keypair_file(self, name: str, keypair: Keypair | None = None) -> Path:
        path = self.tmp_path / f"{name}.json"
        path.write_text(json.dumps(list(bytes(keypair or Keypair()))))
        path.chmod(0o600)
        return path


@pytest.fixture
def rpc(localnet: LocalnetServer) -> Iterator[RpcClient]:
    """A client of a real RpcRouter over the localnet (stopped after the test)."""
    router = RpcRouter(RpcRouterConfig.from_urls(localnet.urls))
    launch(router)
    handle = ActorHandle(router.name)
    handle.attach(router.actor_inbox)
    try:
        yield RpcClient(handle)
    finally:
        router.actor_ref.stop(timeout=10)


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start a HealthServer over a stand-in node holding ``intake`` (stopped after)."""
    servers: list[HealthServer] = []

    def start(intake: OrderIntake | None, **options: Any) -> HealthServer:
        server = HealthServer(StandInNode(intake), "127.0.0.1", 0, **options)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def desk(
    localnet: LocalnetServer,
    engine: Engine,
    rpc: RpcClient,
    serve: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Desk:
    monkeypatch.delenv("CRANK_HTTP_ADDR", raising=False)
    monkeypatch.delenv("CRANK_INTAKE_ADDR", raising=False)
    fixtures = localnet.fixtures
    base, quote = fixtures.create_mint(decimals=6), fixtures.create_mint(decimals=6)
    authority = Keypair()
    market = Market(
        market_id=MARKET_ID,
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
    maker, stranger = Keypair(), Keypair()
    base_account = fixtures.create_token_account(maker.pubkey(), base)
    quote_account = fixtures.create_token_account(maker.pubkey(), quote)
    stranger_quote_account = fixtures.create_token_account(stranger.pubkey(), quote)
    localnet.advance_slots(2)  # confirmed, which intake reads at
    intake = OrderIntake(engine, rpc=rpc)
    desk = Desk(
        localnet,
        engine,
        market,
        maker,
        tmp_path / "unused",
        base_account,
        quote_account,
        stranger_quote_account,
        intake,
        serve(intake),
        capsys,
        tmp_path,
    )
    desk.maker_file = desk.keypair_file("maker", maker)
    return desk


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    """``crank-node ARGV`` in this process, for tests without a desk."""
    capsys.readouterr()
    args: argparse.Namespace = build_parser(argv[0]).parse_args(list(argv))
    code = int(args.handler(args))
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)
