"""The systemd unit in deploy/, checked by systemd-analyze (no node is started)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.node_process import ROOT

LAUNCHER_PATH = ROOT / "bin" / "crank-node"


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """deploy/crank-node.service is a valid unit with the command where the runbook
    installs it: systemd-analyze verify exits 0 and warns about none of its lines (an
    unknown or misspelt key is only a warning), and fails when that command is missing.

    Verified under --root: a directory holding the system's units, the unit in
    etc/systemd/system, and opt/crank-node/bin/crank-node (docs/OPERATIONS.md's venv)
    a copy of this repository's launcher (verify resolves paths inside the root). --man=no: Documentation= is no man page.
    """
    analyze = shutil.which("systemd-analyze")
    if analyze is None or not Path("/usr/lib/systemd/system").is_dir():
        pytest.skip("systemd-analyze is not installed here: the unit cannot be verified")
    unit = (ROOT / "deploy" / "crank-node.service").read_text()
    assert "\nExecStart=/opt/crank-node/bin/crank-node run " in unit
    assert "\nEnvironment=" not in unit, "the environment file chooses the settings"
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/crank-node.service").write_text(unit)

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [analyze, "verify", "--man=no", f"--root={root}", "crank-node.service"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    missing = verify()
    (root / "opt/crank-node/bin").mkdir(parents=True)
    shutil.copy2(LAUNCHER_PATH, root / "opt/crank-node/bin/crank-node")  # executable
    result = verify()

    about_the_unit = [
        line for line in (result.stdout + result.stderr).splitlines() if "crank-node" in line
    ]
    assert missing.returncode != 0 and "/opt/crank-node/bin/crank-node" in missing.stderr
    assert result.returncode == 0, result.stderr
    assert about_the_unit == []
