"""The TypeScript reference client (clients/typescript): its vector tests under
``node --test``, and an end-to-end run that submits from TypeScript to a node on a
localnet and follows the fill to its confirmed settlement through the stream.

Skipped, with the reason, without ``node`` or before ``npm ci`` and the build in
clients/typescript (.ci/run does both).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

from crank_node.harness.scenario import build_scenario
from crank_node.node.health import HealthServer
from crank_node.node.node import Node
from crank_node.node.settings import CrankSettings
from localnet import LocalnetConfig, LocalnetServer
from storage import get_settlement
from supervision.shutdown import ShutdownCoordinator

pytestmark = pytest.mark.timeout(180)

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "typescript"
RUN_TIMEOUT_S = 120


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the TypeScript client needs Node.js 20")
    if not (PACKAGE / "dist" / "index.js").is_file():
        pytest.skip(f"run `npm ci && npm run build` in {PACKAGE} first (.ci/run does)")
    return node


def test_the_typescript_client_rebuilds_every_signing_vector() -> None:
    """``node --test`` in clients/typescript: bytes, order ids and signatures of
    docs/api-vectors.json, made by the TypeScript code."""
    node = _node_or_skip()
    finished = subprocess.run(
        [node, "--test", "test/"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-2000:]
    assert "# fail 0" in finished.stdout


def test_orders_signed_in_typescript_fill_and_settle_seen_through_the_stream(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """Two makers' crossing orders, signed and submitted by the TypeScript client with
    nonces past 2^53 (as strings), fill; the buyer's stream shows the settlement
    confirmed with its landing signature, and the database agrees."""
    node_binary = _node_or_skip()
    wallet = Keypair()
    with LocalnetServer(LocalnetConfig(port=0, endpoints=1, slot_ms=50)) as localnet:
        scenario = build_scenario(
            localnet,
            engine,
            markets=1,
            makers=2,
            settlement_authority=wallet,
            fee_payer=wallet,
            base_atoms_per_maker=10**9,
            quote_atoms_per_maker=10**9,
            seed=17,
        )
        market = scenario.markets[0]
        settings = CrankSettings(
            instance_id="ts-e2e",
            db_url=database_url,
            rpc_urls=tuple(localnet.urls),
            polling_interval_ms=100,
            lease_ttl_ms=15_000,
            membership_interval_ms=1_000,
        )
        node = Node(settings, signers=(wallet,))
        node.start()
        server = HealthServer(node, "127.0.0.1", 0)
        server.start()
        try:
            config = _config(scenario, market, f"http://127.0.0.1:{server.intake_port}")
            config_file = tmp_path / "e2e.json"
            config_file.write_text(json.dumps(config))
            started = time.monotonic()
            finished = subprocess.run(
                [node_binary, "examples/e2e.mjs", str(config_file)],
                cwd=PACKAGE,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
            elapsed_s = time.monotonic() - started
        finally:
            server.stop()
            ShutdownCoordinator(node.shutdown_phases(), deadline_s=60).run()

    print(finished.stdout)  # the report quotes it
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    steps = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    settled = steps[-1]
    assert settled["step"] == "settled" and settled["signature"], steps
    submitted = [step for step in steps if step["step"] == "submitted"]
    assert [step["nonce"] for step in submitted] == [str(2**53 + 1), str(2**53 + 2)]
    record = get_settlement(engine, settled["fill_id"])
    assert record is not None and record.status == "confirmed", record
    assert elapsed_s < RUN_TIMEOUT_S


def _config(scenario: Any, market: Any, url: str) -> dict[str, Any]:
    seller, buyer = scenario.makers
    accounts = scenario.accounts

    def trader(keypair: Keypair, pays: Any, receives: Any) -> dict[str, str]:
        return {
            "seed_hex": bytes(keypair)[:32].hex(),
            "pay_account": str(accounts[(keypair.pubkey(), pays)]),
            "receive_account": str(accounts[(keypair.pubkey(), receives)]),
        }

    return {
        "url": url,
        "market_id": market.market_id,
        "price_atoms": str(100 * market.tick_size_atoms),
        "size_atoms": str(3 * market.lot_size_atoms),
        "seller": trader(seller, market.base_mint, market.quote_mint),
        "buyer": trader(buyer, market.quote_mint, market.base_mint),
        "deadline_ms": 90_000,
    }
