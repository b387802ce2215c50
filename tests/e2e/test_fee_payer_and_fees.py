"""A real node (its own process) on localnet, with a market created by ``crank-node
market create`` whose fee payer is the node's wallet (issue 16): /health follows the
fee payer's SOL (unhealthy below what the next settlements cost, degraded below the
floor, healthy once funded), and after a real settlement /metrics shows what it paid,
matching what the chain charged."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

import market as domain
from crank_node.cli.chain import airdrop, send_and_confirm
from localnet import LocalnetConfig, LocalnetServer
from localnet.fixtures import MintFixture
from tests.e2e.test_status import RunningNode
from tests.integration.intake.conftest import run_cli
from tests.support.node_process import NodeProcess, free_port, make_wallet

pytestmark = pytest.mark.timeout(240)

ATOMS = 1_000_000_000
LOT, TICK, PRICE, SIZE = 1_000, 10, 500, 4_000
MAX_PRIORITY_LAMPORTS = 10_000
# Unhealthy below what one settlement can cost (two signatures, the hard priority cap,
# the marker's rent); degraded below the floor.
MIN_LAMPORTS = (
    2 * domain.LAMPORTS_PER_SIGNATURE + MAX_PRIORITY_LAMPORTS + domain.MARKER_RENT_LAMPORTS
)
FLOOR_LAMPORTS = 50_000_000
COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"


@dataclass
class Desk:
    """A localnet with two funded makers who approved the node's wallet, a database
    holding their market (created with the CLI), and a node to start."""

    localnet: LocalnetServer
    tmp_path: Path
    node_key: Pubkey
    makers: dict[str, Keypair]
    accounts: dict[tuple[str, str], Pubkey]
    mints: dict[str, MintFixture]
    intake_url: str = ""

    def start(self, *flags: str) -> RunningNode:
        port, intake = free_port(), free_port()
        self.intake_url = f"http://127.0.0.1:{intake}"
        process = NodeProcess(
            "--db-path",
            "var/crank.db",
            "--rpc-url",
            self.localnet.url,
            "--wallet-path",
            "wallet.json",
            "--instance-id",
            "fees-1",
            "--http-addr",
            f"127.0.0.1:{port}",
            "--intake-addr",
            f"127.0.0.1:{intake}",
            "--priority-fee-max-lamports",
            str(MAX_PRIORITY_LAMPORTS),
            "--fee-payer-min-settlements",
            "1",
            "--fee-payer-floor-lamports",
            str(FLOOR_LAMPORTS),
            *flags,
        )
        process.wait_for_line("node.ready")
        return RunningNode(process, port)

    def airdrop(self, lamports: int) -> None:
        airdrop(self.localnet.url, self.node_key, lamports)

    def rpc(self, method: str, *params: Any) -> Any:
        request = urllib.request.Request(
            self.localnet.url,
            json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
            ).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert "error" not in answer, answer
        return answer["result"]


@pytest.fixture
def desk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Desk]:
    for name in list(os.environ):
        if name.startswith("CRANK_") and not name.startswith("CRANK_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    with LocalnetServer(LocalnetConfig(port=0, endpoints=1, slot_ms=50)) as localnet:
        fixtures = localnet.fixtures
        wallet = make_wallet(tmp_path / "wallet.json")
        node_key = Keypair.from_bytes(bytes(json.loads(wallet.read_text()))).pubkey()
        base, quote = fixtures.create_mint(6), fixtures.create_mint(6)
        makers = {"seller": Keypair(), "buyer": Keypair()}
        accounts = {}
        for name, maker in makers.items():
            fixtures.fund_wallet(wallet=maker)
            for leg, mint in (("base", base), ("quote", quote)):
                account = fixtures.fund_token_account(maker.pubkey(), mint, ATOMS)
                fixtures.approve_delegate(account, maker, node_key, ATOMS, mint)
                accounts[(name, leg)] = account
        localnet.advance_slots(localnet.config.confirmation_depth_slots + 1)
        assert run_cli(capsys, "db", "upgrade", "--db-path", "var/crank.db").code == 0
        created = run_cli(
            capsys,
            "market",
            "create",
            "--db-path",
            "var/crank.db",
            "--rpc-url",
            localnet.url,
            "--id",
            "FEE-USD",
            "--base-mint",
            str(base.address),
            "--base-decimals",
            "6",
            "--quote-mint",
            str(quote.address),
            "--quote-decimals",
            "6",
            "--lot-size-atoms",
            str(LOT),
            "--tick-size-atoms",
            str(TICK),
            "--settlement-authority",
            str(node_key),
            "--fee-payer",
            str(node_key),
            "--authority-keypair",
            str(wallet),
        )
        assert created.code == 0, created.err
        yield Desk(localnet, tmp_path, node_key, makers, accounts, {"base": base, "quote": quote})


@pytest.fixture
def running() -> Iterator[list[RunningNode]]:
    """Nodes a test started, stopped with SIGTERM afterwards and required to exit 0."""
    nodes: list[RunningNode] = []
    yield nodes
    for node in nodes:
        code = node.process.stop()
        assert code == 0, "".join(node.process.lines[-30:])


def wait_for(
    read: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout_s: float = 60.0
) -> Any:
    """Read until ``done`` says so; fail with the last reading after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()  # never set: its wait is a bounded pause between reads
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what} not reached after {timeout_s}s: {value!r:.2000}")
        pause.wait(0.1)


def health(node: RunningNode) -> tuple[int, dict[str, Any]]:
    code, body, _ = node.get("/health")
    document: dict[str, Any] = json.loads(body)
    return code, document


def fee_payer_is(status: str) -> Callable[[tuple[int, dict[str, Any]]], bool]:
    return lambda answer: answer[1]["components"]["fee_payer"]["status"] == status


def test_health_follows_the_fee_payers_sol_from_empty_to_funded(
    desk: Desk, running: list[RunningNode]
) -> None:
    """An empty wallet cannot pay the next settlement: /health 503, fee_payer unhealthy
    naming the wallet. Funded above that minimum but below the floor: degraded (200)
    naming it. Funded above the floor: healthy. Spent down below the minimum (a transfer
    the wallet signs): unhealthy again."""
    node = desk.start()
    running.append(node)
    payer = str(desk.node_key)

    code, empty = wait_for(lambda: health(node), fee_payer_is("unhealthy"), "fee payer unhealthy")
    component = empty["components"]["fee_payer"]
    assert code == 503 and empty["status"] == "unhealthy"
    assert component["lamports"] == {payer: 0}
    assert component["reason"] == f"fee payer {payer} cannot pay the next settlements"
    assert component["min_lamports"] == MIN_LAMPORTS
    assert component["floor_lamports"] == FLOOR_LAMPORTS

    desk.airdrop(MIN_LAMPORTS + 1)
    code, low = wait_for(lambda: health(node), fee_payer_is("degraded"), "fee payer degraded")
    component = low["components"]["fee_payer"]
    assert code == 200 and low["status"] == "degraded"
    assert component["lamports"] == {payer: MIN_LAMPORTS + 1}
    assert component["reason"] == f"fee payer {payer} below the floor (or unknown): fund it"

    desk.airdrop(FLOOR_LAMPORTS)
    code, funded = wait_for(
        lambda: health(node), lambda a: a[1]["status"] == "healthy", "node healthy"
    )
    assert code == 200
    assert funded["components"]["fee_payer"]["lamports"] == {
        payer: FLOOR_LAMPORTS + MIN_LAMPORTS + 1
    }
    assert "reason" not in funded["components"]["fee_payer"]

    # The wallet spends its SOL elsewhere, down to one lamport short of the minimum.
    held = FLOOR_LAMPORTS + MIN_LAMPORTS + 1
    wallet = Keypair.from_bytes(bytes(json.loads((desk.tmp_path / "wallet.json").read_text())))
    away = transfer(
        TransferParams(
            from_pubkey=desk.node_key,
            to_pubkey=Keypair().pubkey(),
            lamports=held - domain.LAMPORTS_PER_SIGNATURE - MIN_LAMPORTS + 1,
        )
    )
    send_and_confirm(desk.localnet.url, [away], wallet)
    code, spent = wait_for(lambda: health(node), fee_payer_is("unhealthy"), "unhealthy again")
    assert code == 503 and spent["components"]["fee_payer"]["lamports"] == {payer: MIN_LAMPORTS - 1}


def _submit(desk: Desk, capsys: pytest.CaptureFixture[str], round_: int) -> None:
    """A sell and a buy that cross in full: one fill, one settlement."""
    for maker, side, pay, receive in (
        ("seller", "sell", "base", "quote"),
        ("buyer", "buy", "quote", "base"),
    ):
        keypair_file = desk.tmp_path / f"{maker}.json"
        keypair_file.write_text(json.dumps(list(bytes(desk.makers[maker]))))
        keypair_file.chmod(0o600)
        result = run_cli(
            capsys,
            "order",
            "submit",
            "--url",
            desk.intake_url,
            "--keypair",
            str(keypair_file),
            "--market",
            "FEE-USD",
            "--side",
            side,
            "--price-atoms",
            str(PRICE),
            "--size-atoms",
            str(SIZE),
            "--pay-account",
            str(desk.accounts[(maker, pay)]),
            "--receive-account",
            str(desk.accounts[(maker, receive)]),
            "--client-order-id",
            str(round_),
            "--ttl-s",
            "600",
        )
        assert result.code == 0, result.err


def _settlements_on_chain(
    desk: Desk, landed_failed: bool = False
) -> list[tuple[VersionedTransaction, dict[str, Any]]]:
    """The transactions the node's wallet paid for that wrote the seller's base account
    (getTransaction, base64), oldest first, found independently of the node; those that
    landed failed only when ``landed_failed``."""
    signatures = desk.rpc(
        "getSignaturesForAddress",
        str(desk.accounts[("seller", "base")]),
        {"commitment": "confirmed"},
    )
    paid_by_node = []
    for entry in reversed(signatures):  # newest first as RPC lists them
        found = desk.rpc(
            "getTransaction",
            entry["signature"],
            {"encoding": "base64", "commitment": "confirmed", "maxSupportedTransactionVersion": 0},
        )
        transaction = VersionedTransaction.from_bytes(base64.b64decode(found["transaction"][0]))
        failed = found["meta"]["err"] is not None
        if transaction.message.account_keys[0] == desk.node_key and failed <= landed_failed:
            paid_by_node.append((transaction, found["meta"]))
    return paid_by_node


def _compute_budget(transaction: VersionedTransaction) -> tuple[int, int]:
    """(limit, price) from the SetComputeUnitLimit (2) and SetComputeUnitPrice (3)
    instructions, read here byte by byte."""
    keys = transaction.message.account_keys
    found: dict[int, int] = {}
    for instruction in transaction.message.instructions:
        if str(keys[instruction.program_id_index]) == COMPUTE_BUDGET:
            data = bytes(instruction.data)
            found[data[0]] = int.from_bytes(data[1:], "little")
    return found[2], found[3]


def _confirmed(count: int) -> Callable[[list[str]], bool]:
    return lambda lines: (
        sum("storage.settlement" in line and "confirmed" in line for line in lines) >= count
    )


def _two_settlements(
    desk: Desk, capsys: pytest.CaptureFixture[str], running: list[RunningNode], *flags: str
) -> tuple[RunningNode, list[tuple[VersionedTransaction, dict[str, Any]]]]:
    """A funded node started with ``flags`` settles one fill, then another: the node and
    both settlements as the chain has them."""
    desk.airdrop(2 * ATOMS)
    node = desk.start(*flags)
    running.append(node)
    for count in (1, 2):
        _submit(desk, capsys, count)
        node.process.wait_until(_confirmed(count), 120)
    landed = wait_for(
        lambda: _settlements_on_chain(desk),
        lambda found: len(found) == 2,
        "both settlements on chain",
    )
    return node, landed


def test_metrics_after_settlements_show_what_the_chain_charged(
    desk: Desk, running: list[RunningNode], capsys: pytest.CaptureFixture[str]
) -> None:
    """Two fills settle on chain, one after the other. The first attempt asks for the
    default 40,000 units (the simulation has not answered yet), the second for the
    simulated limit. /metrics then says, for the market: fee lamports by part equal to
    what the chain charged both (5,000 per signature; limit x price, rounded up), the
    compute units requested equal to the limits the transactions asked, the price chosen
    equal to the price they bid, the simulated units used above 0 and within the limit
    (as are the units the chain saw), the fee payer's balance as the chain says it, and
    the cap-binding counter at 0 (a price of 1,000 at 40,000 units is 40 lamports, far
    under the 10,000 cap)."""
    node, landed = _two_settlements(desk, capsys, running, "--priority-fee-micro-lamports", "1000")
    budgets = [_compute_budget(transaction) for transaction, _ in landed]
    signatures = [len(transaction.signatures) for transaction, _ in landed]
    priority = [-(-limit * price // 1_000_000) for limit, price in budgets]
    for (_, meta), count, part in zip(landed, signatures, priority, strict=True):
        assert meta["fee"] == 5_000 * count + part
    (first_limit, _), (second_limit, price) = budgets
    assert first_limit == 40_000 and second_limit < first_limit
    for (_, meta), (limit, _) in zip(landed, budgets, strict=True):
        assert 0 < meta["computeUnitsConsumed"] <= limit

    def scrape() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        return _samples(node.get("/metrics")[1].decode())

    balance = desk.rpc("getBalance", str(desk.node_key), {"commitment": "confirmed"})["value"]
    samples = wait_for(
        scrape,
        lambda s: _value(s, "crank_fee_payer_lamports", fee_payer=str(desk.node_key)) == balance,
        "the fee payer's balance",
    )
    fee = "crank_settlement_fee_lamports_total"
    assert _value(samples, fee, market="FEE-USD", part="base") == 5_000 * sum(signatures)
    assert _value(samples, fee, market="FEE-USD", part="priority") == sum(priority)
    assert (
        _value(samples, "crank_settlement_compute_units_requested_total", market="FEE-USD")
        == first_limit + second_limit
    )
    assert _value(samples, "crank_priority_price_micro_lamports", market="FEE-USD") == price
    used = _value(samples, "crank_compute_units_used", market="FEE-USD")
    assert used is not None and 0 < used <= second_limit
    assert _value(samples, "crank_compute_unit_limit", market="FEE-USD") == second_limit
    assert second_limit == domain.compute_unit_limit_for(
        int(used), margin_percent=20, margin_units=1_000
    )
    assert _value(samples, "crank_priority_fee_cap_bound_total") == 0
    print(
        f"\nsettlements: {signatures} signatures, limits {first_limit} -> {second_limit} "
        f"at {price} uL/CU, fees {[meta['fee'] for _, meta in landed]} lamports; simulated "
        f"{used:.0f} units, chain {[meta['computeUnitsConsumed'] for _, meta in landed]}"
    )


def test_the_hard_cap_binding_at_the_simulated_limit_is_counted_in_metrics(
    desk: Desk, running: list[RunningNode], capsys: pytest.CaptureFixture[str]
) -> None:
    """A fixed price of 6,000,000 uL/CU fits the 10,000 lamport cap at the configured
    default of 1,500 units (9,000 lamports: the settings accept it), but not at the
    simulated limit (over 2,000 units): the second settlement's price is lowered to what
    the cap allows, the chain charges no more than the cap, and /metrics counts the
    binding and shows the lowered price."""
    node, landed = _two_settlements(
        desk,
        capsys,
        running,
        "--priority-fee-micro-lamports",
        "6000000",
        "--compute-unit-limit",
        "1500",
    )
    (first_limit, first_price), (limit, price) = [_compute_budget(t) for t, _ in landed]
    assert (first_limit, first_price) == (1_500, 6_000_000)
    assert limit > 1_500 and price == MAX_PRIORITY_LAMPORTS * 1_000_000 // limit < 6_000_000
    assert landed[1][1]["fee"] - 5_000 <= MAX_PRIORITY_LAMPORTS
    samples = _samples(node.get("/metrics")[1].decode())
    assert _value(samples, "crank_priority_fee_cap_bound_total") == 1
    assert _value(samples, "crank_priority_price_micro_lamports", market="FEE-USD") == price


def test_a_simulated_limit_that_proves_too_low_is_simulated_again(
    desk: Desk, running: list[RunningNode], capsys: pytest.CaptureFixture[str]
) -> None:
    """With no margin, the limit is exactly what the first fill's simulation used. The
    makers approved exactly two fills, so the second fill's legs use up the delegations,
    which costs the token program one more unit per leg: its attempt at the cached limit
    lands failed out of compute units. That attempt is dead, not a failed settlement:
    the market is simulated again (the second simulation sees the extra units), the next
    attempt asks for at least twice the failed limit, and the fill is confirmed."""
    quote_atoms = PRICE * SIZE // LOT
    for maker, leg, amount in (("seller", "base", 2 * SIZE), ("buyer", "quote", 2 * quote_atoms)):
        desk.localnet.fixtures.approve_delegate(
            desk.accounts[(maker, leg)], desk.makers[maker], desk.node_key, amount, desk.mints[leg]
        )
    node, _ = _two_settlements(
        desk,
        capsys,
        running,
        "--compute-unit-margin-percent",
        "0",
        "--compute-unit-margin-units",
        "0",
    )

    paid = _settlements_on_chain(desk, landed_failed=True)
    budgets = [_compute_budget(transaction)[0] for transaction, _ in paid]
    errors = [meta["err"] for _, meta in paid]
    assert len(paid) == 3, errors
    (_, spent_meta), (_, last_meta) = paid[1:]
    assert errors[0] is None and errors[2] is None
    assert "ComputationalBudgetExceeded" in json.dumps(
        errors[1]
    ) or "ProgramFailedToComplete" in json.dumps(errors[1]), errors[1]
    used_first = budgets[1]  # the cached limit: what the first simulation said, no margin
    assert spent_meta["computeUnitsConsumed"] == used_first
    assert last_meta["computeUnitsConsumed"] > used_first
    assert budgets[2] >= 2 * used_first
    fees = node.get_json("/status")["pipeline"]["settlement"]["fees"]["FEE-USD"]
    assert fees["simulations"] == 2
    assert fees["units_simulated"] == last_meta["computeUnitsConsumed"]
    assert fees["least_limit"] == 2 * used_first
    # The gauge says what the next attempt asks: at least twice the failed limit, not
    # the re-simulated limit that alone proved too low.
    samples = _samples(node.get("/metrics")[1].decode())
    asked = _value(samples, "crank_compute_unit_limit", market="FEE-USD")
    assert asked == fees["limit_asked"] == max(fees["compute_unit_limit"], 2 * used_first)
    print(
        f"\nlimits asked {budgets}; used {[m['computeUnitsConsumed'] for _, m in paid]}; "
        f"errors {errors}"
    )


def _samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _value(
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str
) -> float | None:
    return samples.get(name, {}).get(tuple(sorted(labels.items())))
