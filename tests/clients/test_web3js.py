"""@solana/web3.js 1.x and @solana/spl-token, clients nobody here wrote, against localnet.

checks.mjs runs each check bounded and prints one JSON line per check and a
summary; this test starts a real-time localnet (400 ms slots, as a cluster),
runs it under Node.js with a timeout, and requires every check to pass. It is
skipped, with the reason, when ``node`` is not installed or ``npm ci`` has not
been run in tests/clients/web3js (.ci/run does it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localnet import LocalnetConfig, LocalnetServer

from .node_checks import node_or_skip, run_checks

pytestmark = pytest.mark.realtime

HARNESS = Path(__file__).parent / "web3js"
RUN_TIMEOUT_S = 150
SLOT_MS = 400


def test_every_web3js_check_passes_against_a_real_time_localnet() -> None:
    """sendAndConfirmTransaction of an SPL TransferChecked confirms in under 2 s over
    PubSub (port + 1, found by web3.js itself), confirmTransaction with the blockhash
    strategy resolves, getTransaction parses, and every other read and subscription
    web3.js makes validates against its own response schemas, jsonParsed
    transactions and blocks included."""
    node = node_or_skip(HARNESS, "@solana/web3.js", "the web3.js checks need Node.js 20")
    config = LocalnetConfig(port=0, endpoints=1, slot_ms=SLOT_MS)
    with LocalnetServer(config) as localnet:
        checks, summary = run_checks(node, HARNESS, [localnet.url], RUN_TIMEOUT_S)
    failed = [check for check in checks if not check["ok"]]
    assert not failed, f"{summary['passed']}/{summary['total']} passed; failed: {failed}"
    assert summary["timings"]["splTransferConfirmMs"] < 2000
