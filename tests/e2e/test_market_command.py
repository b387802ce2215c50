"""``crank-node market create`` and ``market list`` as an operator runs them: bin/crank-node
in its own process, on the database CRANK_DB_PATH names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import storage
from tests.integration.intake import test_market_command as in_process
from tests.integration.intake.test_market_command import create_argv
from tests.support.node_process import CRANK_NODE as LAUNCHER

# The mints on chain that create_argv names and the clean environment, defined once
# (autouse) in tests/integration/intake/test_market_command.py: named here, they apply here.
_mints_on_chain, _clean_environment = in_process._mints_on_chain, in_process._clean_environment


def test_the_launcher_creates_and_lists_markets_from_crank_db_path(tmp_path: Path) -> None:
    """bin/crank-node market create/list in their own processes, the database named by
    CRANK_DB_PATH as the node would find it."""
    database = tmp_path / "node.db"
    engine = storage.open_engine(storage.sqlite_url(database))
    try:
        storage.upgrade(engine)
    finally:
        engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}
    env["CRANK_DB_PATH"] = str(database)

    def crank(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(LAUNCHER), *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
            check=False,
        )

    argv = create_argv("unused")
    created = crank(*argv[:2], *argv[4:])
    listed = crank("market", "list", "--json")

    assert created.returncode == 0, created.stderr
    assert [m["market_id"] for m in json.loads(listed.stdout)] == ["SOL-USDC"]
