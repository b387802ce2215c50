"""bin/crank-node as a user runs it: separate processes, real files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from solders.keypair import Keypair

from crank_node import __version__
from crank_node.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "bin" / "crank-node"


def crank(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CRANK_TRACE"}
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )


def test_version_is_printed() -> None:
    """--version names the program and its version."""
    result = crank("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"crank-node {__version__}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command: str) -> None:
    """Each subcommand answers --help with its usage."""
    result = crank(command, "--help")
    assert result.returncode == 0
    assert f"usage: crank-node {command}" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["drill", "--jobs", "0"], "--jobs: must be at least 1, got 0"),
        (["drill", "--jobs", "many"], "--jobs: not an integer: 'many'"),
        (["trace"], "the following arguments are required"),
    ],
)
def test_bad_arguments_exit_2_with_a_message_naming_the_problem(
    args: list[str], message: str
) -> None:
    """Bad arguments: exit 2, one clear line on stderr, no traceback."""
    result = crank(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_trace_of_a_missing_file_or_unknown_id_exits_1_with_the_reason(tmp_path: Path) -> None:
    """A missing log file and an id that is not in the log are both reported plainly."""
    missing = crank("trace", "abc", "--log", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1
    assert "cannot read --log" in missing.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"action": "node.started"}\n')
    unknown = crank("trace", "abc", "--log", str(empty))
    assert unknown.returncode == 1
    assert "no events of trace 'abc'" in unknown.stderr


@pytest.mark.realtime
def test_the_drill_survives_a_crash_and_a_hang_and_its_trace_reads_back(tmp_path: Path) -> None:
    """crank-node drill: every job arrives through a crash and a hang, the stop is clean, and
    the printed trace id can be followed with crank-node trace."""
    log_file = tmp_path / "drill.jsonl"
    drill = crank("drill", "--jobs", "50", "--trace-log", str(log_file), timeout_s=120)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    for phase in ("steady", "crash", "hang"):
        assert re.search(rf"^{phase}\s+(\d+)/\1 jobs", drill.stdout, re.MULTILINE), drill.stdout
    assert "work stage: 2 restarts" in drill.stdout
    assert "stopped in order, exit code 0" in drill.stdout
    trace_id = re.search(r"crank-node trace (\S+) --log", drill.stdout).group(1)
    flow = crank("trace", trace_id, "--log", str(log_file))
    assert flow.returncode == 0, flow.stderr
    hops = re.findall(r"(send|receive)\s+(\S+) -> (\S+)", flow.stdout)
    assert hops == [
        ("send", "external", "node/pipeline/intake"),
        ("receive", "external", "node/pipeline/intake"),
        ("send", "node/pipeline/intake", "node/pipeline/work"),
        ("receive", "node/pipeline/intake", "node/pipeline/work"),
        ("send", "node/pipeline/work", "node/pipeline/sink"),
        ("receive", "node/pipeline/work", "node/pipeline/sink"),
    ]


def test_a_command_imports_only_what_it_needs() -> None:
    """Only the command being run is imported: `trace` loads neither the database
    (SQLAlchemy) nor the chain server (aiohttp) libraries."""
    probe = (
        "import sys; sys.argv = ['crank-node', 'trace', '--help'];"
        "from crank_node.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('sqlalchemy', 'aiohttp', 'solders') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_run_with_an_otel_endpoint_but_without_the_extra_exits_1_saying_what_to_install(
    tmp_path: Path,
) -> None:
    """otel_endpoint set where OpenTelemetry cannot be imported (hidden here): exit 1
    before the node starts, naming the extra to install; no traceback."""
    wallet = tmp_path / "wallet.json"
    wallet.write_text(str(list(bytes(Keypair()))))
    wallet.chmod(0o600)
    hide_otel = (
        "import sys; sys.modules['supervision.otel'] = None; "
        "from crank_node.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            hide_otel,
            "run",
            "--wallet-path",
            str(wallet),
            "--db-path",
            str(tmp_path / "crank.db"),
            "--otel-endpoint",
            "http://127.0.0.1:4318",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 1, result.stderr
    assert "pip install 'crank-node[otel]'" in result.stderr
    assert "Traceback" not in result.stderr
