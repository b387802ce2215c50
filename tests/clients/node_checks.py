"""Running a Node.js checks harness (tests/clients/<name>/checks.mjs) and reading its
JSON lines: one per check, then ``{"summary": ...}``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest


def node_or_skip(harness: Path, package: str, why: str) -> str:
    """The ``node`` executable; skips the test (with the reason) without it or without
    ``package`` installed in ``harness`` by ``npm ci``."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(f"node is not installed: {why}")
    if not (harness / "node_modules" / package).is_dir():
        pytest.skip(f"run `npm ci` in {harness} first (.ci/run does)")
    return node


def run_checks(
    node: str, harness: Path, args: list[str], timeout_s: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every check's line, and the summary line."""
    finished = subprocess.run(
        [node, "checks.mjs", *args],
        cwd=harness,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert lines and "summary" in lines[-1], finished.stderr[-2000:]
    return lines[:-1], lines[-1]["summary"]
