"""@solana/kit, the current Solana JavaScript SDK (a client nobody here wrote), against
localnet.

checks.mjs calls, through kit's typed RPC and RPC subscriptions, every read method
localnet serves plus airdrop, sendAndConfirmTransaction and four subscriptions, and
prints one JSON line per check and a summary; this test starts a real-time localnet
(400 ms slots), runs it under Node.js with a timeout, and requires every check to pass.
Skipped, with the reason, when ``node`` is not installed or ``npm ci`` has not been run
in tests/clients/kit (.ci/run does it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localnet import LocalnetConfig, LocalnetServer

from .node_checks import node_or_skip, run_checks

pytestmark = pytest.mark.realtime

HARNESS = Path(__file__).parent / "kit"
RUN_TIMEOUT_S = 150
SLOT_MS = 400


def test_every_kit_check_passes_against_a_real_time_localnet() -> None:
    """Kit reads every answer as its declared type (integers as bigints): cluster facts,
    accounts (base64 with space, jsonParsed), the native mint, json/jsonParsed/base64
    transactions and blocks, fees, simulation, and slot/root/account/logs subscriptions."""
    node = node_or_skip(HARNESS, "@solana/kit", "the kit checks need Node.js 20.18+")
    config = LocalnetConfig(port=0, endpoints=1, slot_ms=SLOT_MS)
    with LocalnetServer(config) as localnet:
        pubsub_url = localnet.pubsub_urls[0]
        assert pubsub_url is not None
        checks, summary = run_checks(node, HARNESS, [localnet.url, pubsub_url], RUN_TIMEOUT_S)
    failed = [check for check in checks if not check["ok"]]
    assert not failed, f"{summary['passed']}/{summary['total']} passed; failed: {failed}"
    assert summary["total"] == len(checks) > 0
