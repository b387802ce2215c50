"""``crank-node localnet``: options, fixtures, the announcement line, and a clean stop."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import httpx2
import pytest

from crank_node.cli.localnet import serve
from crank_node.cli.main import build_parser


class Announcements(io.StringIO):
    """stdout for the command: signals when the announcement line is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Event()

    def write(self, text: str) -> int:
        count = super().write(text)
        if "\n" in text:
            self.written.set()
        return count


def test_the_localnet_command_serves_its_fixtures_until_stopped(tmp_path: Path) -> None:
    """Wallets, mints, funded accounts and an approval are created, announced, and served."""
    args = build_parser().parse_args(
        [
            "localnet",
            "--port",
            "0",
            "--endpoints",
            "2",
            "--slot-ms",
            "0",
            "--wallet",
            "alice",
            "--wallet",
            "settler:1",
            "--mint",
            "usdc:6",
            "--token-account",
            "alice:usdc:5000000",
            "--approve",
            "alice:usdc:settler:2000000",
            "--keys-dir",
            str(tmp_path / "keys"),
            "--fixtures-out",
            str(tmp_path / "fixtures.json"),
        ]
    )
    assert args.handler.__name__ == "run_localnet"
    stop, out = threading.Event(), Announcements()
    outcome: list[int] = []
    server = threading.Thread(target=lambda: outcome.append(serve(args, stop, out)))
    server.start()
    try:
        assert out.written.wait(10), "the command never announced itself"
        summary = json.loads(out.getvalue())
        assert summary == json.loads((tmp_path / "fixtures.json").read_text())
        assert len(summary["urls"]) == 2
        account = summary["token_accounts"]["alice:usdc"]
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "getTokenAccountBalance",
            "params": [account, {"commitment": "processed"}],
        }
        with httpx2.Client(timeout=5) as http:
            answer = http.post(summary["urls"][1], json=body).json()
        assert answer["result"]["value"]["amount"] == "5000000"
        assert sorted(path.name for path in (tmp_path / "keys").iterdir()) == [
            "alice.json",
            "mint-usdc-authority.json",
            "mint-usdc.json",
            "settler.json",
        ]
        assert (tmp_path / "keys" / "alice.json").stat().st_mode & 0o077 == 0
    finally:
        stop.set()
        server.join(10)
    assert outcome == [0]


def test_bad_fixture_options_exit_with_usage_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unknown wallet in --token-account is a usage error (2) that says which option."""
    args = build_parser().parse_args(["localnet", "--port", "0", "--token-account", "ghost:usdc:1"])
    assert serve(args, threading.Event(), io.StringIO()) == 2
    assert "--token-account: unknown wallet 'ghost'" in capsys.readouterr().err


def test_a_non_loopback_host_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Everything binds loopback only; another address is a usage error naming the host."""
    args = build_parser().parse_args(["localnet", "--host", "0.0.0.0", "--port", "0"])
    assert serve(args, threading.Event(), io.StringIO()) == 2
    assert "host: '0.0.0.0' is not a loopback address" in capsys.readouterr().err
