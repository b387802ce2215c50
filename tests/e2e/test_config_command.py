"""``crank-node config show`` and ``config check`` as an operator runs them: bin/crank-node
in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.config import test_config_command as in_process
from tests.integration.config.test_config_command import SECRET_RPC, write_wallet
from tests.support.node_process import CRANK_NODE as LAUNCHER

# No CRANK_* variable of the caller's, and the test's own working directory: the autouse
# fixture of tests/integration/config/test_config_command.py, named here to apply here.
_clean_environment = in_process._clean_environment


def crank(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """bin/crank-node in its own process, with only ``env``'s CRANK_* variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "key"),
    [
        ([], {"CRANK_MAX_CONCURRENT_MATCHES": "many"}, "max_concurrent_matches = 'many'"),
        ([], {"CRANK_POLLING_INTERVAL_MS": "-5"}, "polling_interval_ms = '-5'"),
        (["--http-addr", "localhost"], {}, "http_addr = 'localhost' (from flag --http-addr)"),
        (["--log-level", "LOUD"], {}, "log_level = 'LOUD' (from flag --log-level)"),
        (
            [],
            {"CRANK_DB_URL": "sqlite:///a.db", "CRANK_DB_PATH": "b.db"},
            "db_url (from env CRANK_DB_PATH)",
        ),
        (
            [],
            {"CRANK_RPC_URLS": "http://a:1", "CRANK_RPC_PRIMARY": "http://b:2"},
            "rpc_urls (from env)",
        ),
    ],
)
def test_a_bad_value_exits_1_naming_the_key_and_creates_nothing(
    tmp_path: Path, args: list[str], env: dict[str, str], key: str
) -> None:
    """The real command exits 1 with one clear message naming the key, no traceback, and no file made."""
    result = crank("config", "show", *args, env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("crank-node config: error: invalid configuration:")
    assert key in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("polling_intervl_ms = 1\n", "polling_intervl_ms (from file"),
        ("polling_interval_ms = = 1\n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_exits_1_naming_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    """An unknown key or malformed TOML in --config: exit 1, naming the key or the file."""
    config = tmp_path / "crank.toml"
    config.write_text(text, encoding="utf-8")
    result = crank("config", "check", "--config", str(config))
    assert result.returncode == 1
    assert message in result.stderr and str(config) in result.stderr


def test_the_real_command_masks_secrets_and_checks_a_wallet_without_leaking_it(
    tmp_path: Path,
) -> None:
    """show and check as processes: exit 0, masked URLs, the wallet's public key only, and no database file made."""
    keypair = write_wallet(tmp_path / "id.json")
    env = {
        "CRANK_RPC_URLS": SECRET_RPC,
        "CRANK_DB_PATH": str(tmp_path / "node.db"),
        "CRANK_WALLET_PATH": str(tmp_path / "id.json"),
    }
    shown = crank("config", "show", env=env)
    checked = crank("config", "check", "--instance-id", "node-a", env=env)
    assert (shown.returncode, checked.returncode) == (0, 0), shown.stderr + checked.stderr
    assert "https://rpc.example.com/***?***" in shown.stdout
    assert "configuration OK: node node-a" in checked.stdout
    assert str(keypair.pubkey()) in checked.stdout
    everything: Any = shown.stdout + shown.stderr + checked.stdout + checked.stderr
    for secret in ("APIKEY123", "QUERYKEY", "pa55", str(keypair), json.dumps(list(bytes(keypair)))):
        assert secret not in everything
    assert not (tmp_path / "node.db").exists()
