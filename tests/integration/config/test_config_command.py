"""``crank-node config show`` and ``config check`` in this process, through the command's own
parser and handler (tests/e2e/test_config_command.py runs them as an operator does)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
from solders.keypair import Keypair

from crank_node.cli import config as config_command

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


def write_wallet(path: Path, mode: int = 0o600) -> Keypair:
    keypair = Keypair()
    path.write_text(json.dumps(list(bytes(keypair))), encoding="utf-8")
    path.chmod(mode)
    return keypair


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


def test_show_never_reads_the_wallet_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """show lists wallet_path only: even a refused (world-readable) key file does not fail it."""
    wallet = tmp_path / "id.json"
    write_wallet(wallet, 0o644)
    monkeypatch.setenv("CRANK_WALLET_PATH", str(wallet))
    assert run("show") == 0
    assert str(wallet) in capsys.readouterr().out


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
