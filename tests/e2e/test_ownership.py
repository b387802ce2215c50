"""crank-node refuses to run when another distribution has claimed one of its
top-level packages (issue 18): the `pip install market` case, reproduced with a real
installed distribution record on the path of a real crank-node process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crank_node.cli.ownership import foreign_owners, ownership_problem
from tests.support.node_process import CRANK_NODE, ROOT


def _foreign_distribution(site: Path) -> None:
    """A distribution named 'market' whose RECORD claims market/__init__.py, as pip
    leaves it after `pip install market` into the same environment."""
    info = site / "market-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: market\nVersion: 0.1\n")
    (info / "RECORD").write_text("market/__init__.py,,\nmarket-0.1.dist-info/METADATA,,\n")


def test_a_package_claimed_by_another_distribution_stops_crank_node_naming_it(
    tmp_path: Path,
) -> None:
    """`crank-node config check` exits 1 naming the package and the intruder, and says to
    use an environment of its own."""
    site = tmp_path / "site"
    _foreign_distribution(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    done = subprocess.run(
        [sys.executable, str(CRANK_NODE), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert "'market' is also installed by market" in done.stderr
    assert "environment of its own" in done.stderr


def test_our_own_environment_passes() -> None:
    """The test environment itself is clean: nothing else claims our packages."""
    assert ownership_problem(foreign_owners()) is None
    assert foreign_owners({"market": ["crank-node", "crank_node"]}) == {}
