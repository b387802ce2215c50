"""docs/OPERATIONS.md followed from a clean directory against a real localnet, as a
new operator would: every command of the runbook runs here, in the runbook's order,
and each is checked to appear in the runbook word for word (with the values this
test has in place of ``$RPC``, ``$BASE_MINT``...). The quote mint is a Token-2022
mint: the market settles through the node's pipeline and the balances reconcile.

The chain stands in for devnet: the mints and the makers' funded token accounts
exist before the operator starts (on devnet they are someone else's), created with
the localnet's fixtures.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
from solders.keypair import Keypair
from spl.token.constants import TOKEN_2022_PROGRAM_ID

from localnet import LocalnetServer
from localnet.commitment import Commitment
from market import decode_token_account
from tests.integration.intake.conftest import CliResult, run_cli
from tests.support.node_process import NodeProcess, free_port

ROOT = Path(__file__).resolve().parents[3]
RUNBOOK = (ROOT / "docs" / "OPERATIONS.md").read_text()
ATOMS = 1_000_000_000
LOT, TICK, PRICE, SIZE = 1_000, 10, 500, 4_000  # 4 lots at 500 quote atoms a lot: 2_000 quote


pytestmark = [pytest.mark.localnet(slot_ms=50), pytest.mark.timeout(240)]


@pytest.fixture(autouse=True)
def _clean_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CRANK_") and not name.startswith("CRANK_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


class Transcript:
    """Runs runbook commands in this process, checking each is in the runbook."""

    def __init__(self, capsys: pytest.CaptureFixture[str], values: dict[str, str]) -> None:
        self.capsys, self.values, self.lines = capsys, values, []

    def __call__(self, command: str, expect: int = 0) -> CliResult:
        assert command in _runbook_commands(), f"not in docs/OPERATIONS.md: {command}"
        argv = shlex.split(self._fill(command))
        assert argv[0] == "crank-node"
        result = run_cli(self.capsys, *argv[1:])
        self.lines += [
            f"$ {self._fill(command)}",
            *result.out.splitlines(),
            *result.err.splitlines(),
        ]
        assert result.code == expect, result.err
        return result

    def _fill(self, command: str) -> str:
        return re.sub(r"\$([A-Z_]+)", lambda m: self.values.get(m[1], m[0]), command)


def _runbook_commands() -> str:
    """The runbook with its line continuations joined."""
    return re.sub(r"\s*\\\n\s*", " ", RUNBOOK)


def _keypair_file(path: Path, keypair: Keypair) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(list(bytes(keypair)), handle)
    return path


def test_the_runbook_from_a_clean_directory_trades_a_token_2022_market(
    localnet: LocalnetServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """wallet new, airdrop, show; db upgrade; market create (quote on Token-2022) and
    list; each maker's approve and check; config check of the devnet example; run;
    two crossing orders: the fill settles on chain (TransferChecked under Token-2022)
    and every balance moves by exactly the matched amounts."""
    fixtures = localnet.fixtures
    base = fixtures.create_mint(6)
    quote = fixtures.create_mint(6, token_program=TOKEN_2022_PROGRAM_ID)
    seller, buyer = Keypair(), Keypair()
    accounts = {}
    for name, maker in (("seller", seller), ("buyer", buyer)):
        fixtures.fund_wallet(wallet=maker)
        accounts[name] = {
            "base": fixtures.fund_token_account(maker.pubkey(), base, ATOMS),
            "quote": fixtures.fund_token_account(maker.pubkey(), quote, ATOMS),
        }
        _keypair_file(tmp_path / f"{name}.json", maker)
    localnet.advance_slots(localnet.config.confirmation_depth_slots + 1)
    values = {
        "RPC": localnet.url,
        "BASE_MINT": str(base.address),
        "QUOTE_MINT": str(quote.address),
        "SELLER": str(seller.pubkey()),
        "BUYER": str(buyer.pubkey()),
    }
    step = Transcript(capsys, values)

    created = step("crank-node wallet new wallet.json")
    assert oct((tmp_path / "wallet.json").stat().st_mode & 0o777) == "0o600"
    node_key = re.search(r"public key: (\w+)", created.out)[1]  # type: ignore[index]
    assert str(json.loads((tmp_path / "wallet.json").read_text())) not in created.out
    values["NODE"] = node_key
    step("crank-node wallet airdrop wallet.json --sol 2 --rpc-url $RPC")
    localnet.advance_slots(localnet.config.confirmation_depth_slots + 1)
    shown = step("crank-node wallet show wallet.json --rpc-url $RPC")
    assert node_key in shown.out and "2.000000000 SOL" in shown.out
    step("crank-node db upgrade --db-path var/crank.db")
    market = step(
        "crank-node market create --db-path var/crank.db --rpc-url $RPC --id DEMO-USD "
        "--base-mint $BASE_MINT --base-decimals 6 --quote-mint $QUOTE_MINT --quote-decimals 6 "
        "--lot-size-atoms 1000 --tick-size-atoms 10 --settlement-authority $NODE --fee-payer $NODE "
        "--authority-keypair wallet.json"
    )
    assert f"quote_token_program: {TOKEN_2022_PROGRAM_ID}" in market.out
    signed = step(
        "crank-node market sign --db-path var/crank.db --id DEMO-USD "
        "--authority-keypair wallet.json"
    )
    assert f"market DEMO-USD signed by {node_key}" in signed.out
    step("crank-node market list --db-path var/crank.db")
    for maker, mint in (("seller", "BASE_MINT"), ("buyer", "QUOTE_MINT")):
        values["MAKER_FILE"], values["MINT"] = f"{maker}.json", values[mint]
        values["MAKER"] = values[maker.upper()]
        step(
            "crank-node maker check --owner $MAKER --mint $MINT --delegate $NODE "
            "--amount 1000000 --rpc-url $RPC",
            expect=1,
        )
        step(
            "crank-node maker approve --keypair $MAKER_FILE --mint $MINT --delegate $NODE "
            "--amount 1000000 --rpc-url $RPC"
        )
        localnet.advance_slots(localnet.config.confirmation_depth_slots + 1)
        step(
            "crank-node maker check --owner $MAKER --mint $MINT --delegate $NODE "
            "--amount 1000000 --rpc-url $RPC"
        )
    (tmp_path / "crank-node.toml").write_text(
        _devnet_example().replace("/etc/crank-node/wallet.json", str(tmp_path / "wallet.json"))
    )
    step("crank-node config check --config crank-node.toml")

    intake, operator = free_port(), free_port()
    node = NodeProcess(
        "--db-path",
        "var/crank.db",
        "--rpc-url",
        localnet.url,
        "--wallet-path",
        "wallet.json",
        "--instance-id",
        "node-1",
        "--intake-addr",
        f"127.0.0.1:{intake}",
        "--http-addr",
        f"127.0.0.1:{operator}",
    )
    assert (
        "crank-node run --db-path var/crank.db --rpc-url $RPC --wallet-path wallet.json "
        "--instance-id node-1" in _runbook_commands()
    )
    try:
        node.wait_for_line("node.ready")
        values["URL"] = f"http://127.0.0.1:{intake}"
        for maker, side, pay, receive, order_id in (
            ("seller", "sell", "base", "quote", 1),
            ("buyer", "buy", "quote", "base", 2),
        ):
            values.update(
                MAKER_FILE=f"{maker}.json",
                SIDE=side,
                ID=str(order_id),
                PAY=str(accounts[maker][pay]),
                RECEIVE=str(accounts[maker][receive]),
            )
            step(
                "crank-node order submit --url $URL --keypair $MAKER_FILE --market DEMO-USD "
                "--side $SIDE --price-atoms 500 --size-atoms 4000 --pay-account $PAY "
                "--receive-account $RECEIVE --client-order-id $ID --ttl-s 600"
            )
        node.wait_until(
            lambda lines: any(
                "storage.settlement" in line and "confirmed" in line for line in lines
            ),
            120,
        )
    finally:
        assert node.stop() == 0
    localnet.advance_slots(localnet.config.confirmation_depth_slots + 1)
    slot = localnet.ledger.tip().slot(Commitment.CONFIRMED)
    quote_atoms = PRICE * SIZE // LOT
    expected = {
        ("seller", "base"): ATOMS - SIZE,
        ("seller", "quote"): ATOMS + quote_atoms,
        ("buyer", "base"): ATOMS + SIZE,
        ("buyer", "quote"): ATOMS - quote_atoms,
    }
    for (maker, leg), amount in expected.items():
        found = localnet.ledger.account(accounts[maker][leg], slot)
        assert found is not None
        decoded = decode_token_account(accounts[maker][leg], bytes(found.data), found.owner)
        assert decoded.amount == amount, (maker, leg)
    print("\n".join(step.lines))  # the transcript, for the report (pytest -s)


def _devnet_example() -> str:
    """The runbook's example TOML (the first ```toml block)."""
    match = re.search(r"```toml\n(.*?)```", RUNBOOK, re.S)
    assert match is not None, "docs/OPERATIONS.md has no ```toml block"
    return match[1]
