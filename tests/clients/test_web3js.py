"""@solana/web3.js 1.x and @solana/spl-token, clients nobody here wrote, against localnet.

checks.mjs runs each check bounded and prints one JSON line per check and a
summary; this test starts a real-time localnet (400 ms slots, as a cluster),
runs it under Node.js with a timeout, and requires every check to pass. It is
skipped, with the reason, when ``node`` is not installed or ``npm ci`` has not
been run in tests/clients/web3js (.ci/run does it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from localnet import LocalnetConfig, LocalnetServer

pytestmark = [pytest.mark.integration, pytest.mark.realtime]

HARNESS = Path(__file__).parent / "web3js"
RUN_TIMEOUT_S = 150
SLOT_MS = 400


def _harness_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the web3.js checks need Node.js 20")
    if not (HARNESS / "node_modules" / "@solana" / "web3.js").is_dir():
        pytest.skip(f"run `npm ci` in {HARNESS} first (.ci/run does)")
    return node


def _run_checks(node: str, url: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    finished = subprocess.run(
        [node, "checks.mjs", url], cwd=HARNESS, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    lines = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert lines and "summary" in lines[-1], finished.stderr[-2000:]
    return lines[:-1], lines[-1]["summary"]


def test_every_web3js_check_passes_against_a_real_time_localnet() -> None:
    """sendAndConfirmTransaction of an SPL TransferChecked confirms in under 2 s over
    PubSub (port + 1, found by web3.js itself), confirmTransaction with the blockhash
    strategy resolves, getTransaction parses, and every other read and subscription
    web3.js makes validates against its own response schemas, jsonParsed
    transactions and blocks included."""
    node = _harness_or_skip()
    config = LocalnetConfig(port=0, endpoints=1, slot_ms=SLOT_MS)
    with LocalnetServer(config) as localnet:
        checks, summary = _run_checks(node, localnet.url)
    failed = [check for check in checks if not check["ok"]]
    assert not failed, f"{summary['passed']}/{summary['total']} passed; failed: {failed}"
    assert summary["timings"]["splTransferConfirmMs"] < 2000
