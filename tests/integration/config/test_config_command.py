"""``crank-node config show`` and ``config check``: in process, and as an operator runs them."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair

from crank_node.cli import config as config_command

ROOT = Path(__file__).resolve().parents[3]
LAUNCHER = ROOT / "bin" / "crank-node"
SECRET_RPC = "https://user:pa55@rpc.example.com/v2/APIKEY123?api-key=QUERYKEY"
SECRET_DB = "postgresql+psycopg://bob:hunter2@db.internal:5432/crank"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CRANK_* variable of the caller's leaks in, and the working directory is the test's own."""
    for name in list(os.environ):
        if name.startswith("CRANK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def run(*argv: str) -> int:
    """Parse ``crank-node config ...`` with the command's own parser and run its handler."""
    parser = argparse.ArgumentParser(prog="crank-node")
    config_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["config", *argv])
    return int(args.handler(args))


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


def write_wallet(path: Path, mode: int = 0o600) -> Keypair:
    keypair = Keypair()
    path.write_text(json.dumps(list(bytes(keypair))), encoding="utf-8")
    path.chmod(mode)
    return keypair


@pytest.mark.integration
def test_show_prints_each_value_with_its_source_and_masks_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table has every key, its value and default / file / env / flag as source; URLs are masked."""
    config = tmp_path / "crank.toml"
    config.write_text(f'rpc_urls = ["{SECRET_RPC}"]\npolling_interval_ms = 250\n', encoding="utf-8")
    monkeypatch.setenv("CRANK_DB_URL", SECRET_DB)
    assert run("show", "--config", str(config), "--error-threshold", "9") == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows["rpc_urls"].split()[1:] == ["https://rpc.example.com/***?***", "file", str(config)]
    assert rows["polling_interval_ms"].split()[1:] == ["250", "file", str(config)]
    assert rows["db_url"].split()[1:] == [
        "postgresql+psycopg://bob:***@db.internal:5432/crank",
        "env",
        "CRANK_DB_URL",
    ]
    assert rows["error_threshold"].split()[1:] == ["9", "flag", "--error-threshold"]
    assert rows["shutdown_timeout_ms"].split()[1:] == ["30000", "default"]
    assert rows["wallet_path"].split()[1:] == ["(not", "set)", "default"]


@pytest.mark.integration
def test_show_json_gives_value_and_source_per_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints {key: {value, source}} with the same masking, for machines."""
    monkeypatch.setenv("CRANK_RPC_PRIMARY", SECRET_RPC)
    monkeypatch.setenv("CRANK_TRACE", "1")
    assert run("show", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["rpc_urls"] == {
        "value": ["https://rpc.example.com/***?***"],
        "source": "env CRANK_RPC_PRIMARY",
    }
    assert shown["trace"] == {"value": True, "source": "env CRANK_TRACE"}
    assert shown["shutdown_timeout_ms"] == {"value": 30000, "source": "default"}


@pytest.mark.integration
def test_show_never_reads_the_wallet_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """show lists wallet_path only: even a refused (world-readable) key file does not fail it."""
    wallet = tmp_path / "id.json"
    write_wallet(wallet, 0o644)
    monkeypatch.setenv("CRANK_WALLET_PATH", str(wallet))
    assert run("show") == 0
    assert str(wallet) in capsys.readouterr().out


@pytest.mark.integration
def test_check_loads_the_wallet_and_prints_only_its_public_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check validates everything, loads the wallet and reports its public key, never its secret."""
    keypair = write_wallet(tmp_path / "id.json")
    monkeypatch.setenv("CRANK_WALLET_PATH", str(tmp_path / "id.json"))
    assert run("check") == 0
    out = capsys.readouterr().out
    assert out.startswith("configuration OK") and str(keypair.pubkey()) in out
    assert str(keypair) not in out


@pytest.mark.integration
@pytest.mark.parametrize(
    ("mode", "message"),
    [(0o640, "chmod 600"), (None, "wallet_path (from default): not set")],
)
def test_check_fails_on_a_refused_or_missing_wallet(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: int | None,
    message: str,
) -> None:
    """check exits 1 when the key file is open to others, or when no wallet_path is set."""
    if mode is not None:
        write_wallet(tmp_path / "id.json", mode)
        monkeypatch.setenv("CRANK_WALLET_PATH", str(tmp_path / "id.json"))
    assert run("check") == 1
    err = capsys.readouterr().err
    assert err.startswith("crank-node config: error:") and message in err


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
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
