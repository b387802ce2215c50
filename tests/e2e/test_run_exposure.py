"""`crank-node run` and the operator listener's exposure: an address off loopback is
refused before anything runs unless asked for with a usable token file; then the
operator routes need the token, and the public intake listener answers on its own."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from localnet import LocalnetServer
from tests.support.node_process import NodeProcess, free_port, make_database, make_wallet

TOKEN = "0123456789abcdef" * 4


pytestmark = pytest.mark.localnet(slot_ms=100)


def test_run_refuses_an_operator_address_off_loopback_naming_http_addr(tmp_path: Path) -> None:
    """`--http-addr 0.0.0.0:P` alone exits 1 naming http_addr and the two settings that
    would allow it; no database is created."""
    node = NodeProcess("--db-path", str(tmp_path / "x.db"), "--http-addr", "0.0.0.0:0")
    assert node.wait() == 1
    text = "".join(node.lines)
    assert "http_addr" in text and "operator_allow_remote" in text, text
    assert not (tmp_path / "x.db").exists()


def test_run_refuses_a_token_file_others_can_read_naming_the_file(tmp_path: Path) -> None:
    """Allowed off loopback, but the token file is 0644: exit 1 naming the file and
    chmod 600, before the database is opened."""
    token = tmp_path / "operator.token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    node = NodeProcess(
        "--db-path",
        str(make_database(tmp_path / "crank.db")),
        "--wallet-path",
        str(make_wallet(tmp_path / "wallet.json")),
        "--http-addr",
        "0.0.0.0:0",
        "--operator-allow-remote",
        "--operator-token-file",
        str(token),
    )
    assert node.wait() == 1
    text = "".join(node.lines)
    assert str(token) in text and "chmod 600" in text, text


def test_a_remote_operator_listener_needs_the_bearer_token_and_intake_is_apart(
    tmp_path: Path, localnet: LocalnetServer
) -> None:
    """With the flag and a 0600 token file the node runs: /health without the token
    is 401, with it 200 (asked over 127.0.0.1); intake answers on its own port and
    does not serve /status."""
    token = tmp_path / "operator.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    operator_port, intake_port = free_port(), free_port()
    node = NodeProcess(
        "--db-path",
        str(make_database(tmp_path / "crank.db")),
        "--wallet-path",
        str(make_wallet(tmp_path / "wallet.json")),
        "--rpc-url",
        localnet.url,
        "--instance-id",
        "exposed",
        "--http-addr",
        f"0.0.0.0:{operator_port}",
        "--operator-allow-remote",
        "--operator-token-file",
        str(token),
        "--intake-addr",
        f"127.0.0.1:{intake_port}",
    )
    try:
        node.wait_for_line("ready")
        assert re.search(rf"order intake on http://127\.0\.0\.1:{intake_port}", "".join(node.lines))
        base = f"http://127.0.0.1:{operator_port}"
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{base}/health", timeout=10)
        caught.value.close()
        assert caught.value.code == 401
        request = urllib.request.Request(
            f"{base}/health", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["node_id"] == "exposed"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{intake_port}/status", timeout=10)
        missing.value.close()
        assert missing.value.code == 404
    finally:
        assert node.stop() == 0
