"""``crank-node order submit`` as a user runs it: bin/crank-node in its own process,
against a node's real HTTP server (the desk of tests/integration/intake)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.intake import conftest as intake
from tests.integration.intake.conftest import LOT_ATOMS, Desk
from tests.support.node_process import CRANK_NODE as LAUNCHER

pytestmark = pytest.mark.localnet(advance_slots=10)

# The intake desk and the fixtures it is built from, defined once in
# tests/integration/intake/conftest.py: named here, they serve this module too.
desk, rpc, serve = intake.desk, intake.rpc, intake.serve


def test_the_launcher_submits_and_refuses_in_its_own_process(desk: Desk) -> None:
    """bin/crank-node order submit in a separate process: a good order exits 0 and is
    stored; an order off the lot exits 1 with one line naming size_atoms, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}

    def crank(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(LAUNCHER), *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )

    good = crank(*desk.submit_argv(desk.buy()))
    before = desk.orders_table()
    bad = crank(*desk.submit_argv(desk.buy(nonce=2, client_order_id=2, size_atoms=LOT_ATOMS + 1)))

    assert good.returncode == 0, good.stderr
    assert len(before) == 1
    assert bad.returncode == 1
    assert "crank-node order submit: error: size_atoms (--size-atoms): " in bad.stderr
    assert "Traceback" not in bad.stderr
    assert desk.orders_table() == before
