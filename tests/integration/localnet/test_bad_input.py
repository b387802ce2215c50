"""Whatever a client sends, the server answers with a JSON-RPC error and keeps serving."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from localnet import LocalnetServer

pytestmark = pytest.mark.localnet(endpoints=3)


KEY = "11111111111111111111111111111111"


def call(method: str, *params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 9, "method": method, "params": list(params)}


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"{not json", -32700, "Parse error"),
        (b"[]", -32600, "Invalid request"),
        (b'{"jsonrpc": "1.0", "id": 9, "method": "getSlot"}', -32600, "Invalid request"),
        (b'{"jsonrpc": "2.0", "id": 9, "method": 5}', -32600, "Invalid request"),
        (b'{"jsonrpc": "2.0", "id": 9, "method": "getVoteAccounts"}', -32601, "Method not found"),
    ],
)
def test_malformed_requests_get_the_standard_json_rpc_errors(
    localnet: LocalnetServer, http: httpx2.Client, body: bytes, code: int, message: str
) -> None:
    """Parse error, invalid request and unknown method, each with its code and message."""
    answer = http.post(localnet.url, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    assert answer.json()["error"] == {"code": code, "message": message}


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        (call("getBalance"), "Invalid params: invalid length 0, expected at least 1."),
        (call("getBalance", "not-a-key"), "Invalid param: Invalid"),
        (call("getBalance", 42), "Invalid params: invalid type: integer `42`, expected a string."),
        (
            call("getBalance", KEY, {"commitment": "soon"}),
            "Invalid params: unknown variant `soon`, expected one of "
            "`processed`, `confirmed`, `finalized`.",
        ),
        (call("getMultipleAccounts", [KEY] * 101), "Too many inputs provided; max 100"),
        (call("getSignatureStatuses", ["1" * 64] * 257), "Too many inputs provided; max 256"),
        (call("sendTransaction", "!!!", {"encoding": "base64"}), "invalid base64 encoding: "),
        (call("sendTransaction", "AQID", {"encoding": "base64"}), "failed to deserialize "),
        (
            call("getAccountInfo", KEY, {"encoding": "base58"}),
            "Invalid params: unsupported encoding",
        ),
        (call("getTokenAccountBalance", KEY), "Invalid param: not a Token account"),
        (call("getSlot", {"minContextSlot": 50}), "Minimum context slot has not been reached"),
    ],
)
def test_bad_params_are_answered_with_solana_worded_errors(
    localnet: LocalnetServer, http: httpx2.Client, request_body: dict[str, Any], message: str
) -> None:
    """-32602 (or -32016 for minContextSlot) with the node's wording, and the request's id."""
    answer = http.post(localnet.url, json=request_body).json()
    assert answer["id"] == 9
    assert answer["error"]["code"] in (-32602, -32016)
    assert answer["error"]["message"].startswith(message)


def test_a_batch_answers_each_request_and_skips_notifications(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """A JSON-RPC batch gets one answer per request with an id, in order, errors included."""
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "getSlot"},
        {"jsonrpc": "2.0", "method": "getSlot"},
        {"jsonrpc": "2.0", "id": "b", "method": "nope"},
        7,
    ]
    answers = http.post(localnet.url, json=batch).json()
    assert [answer.get("id") for answer in answers] == ["a", "b", None]
    assert answers[0]["result"] == 0
    assert [answers[1]["error"]["code"], answers[2]["error"]["code"]] == [-32601, -32600]


def test_the_server_keeps_serving_after_bad_input(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """A burst of garbage changes nothing for the next well-formed request."""
    for garbage in (
        b"\xff\xfe",
        b"null",
        b'{"jsonrpc":"2.0","id":{},"method":"getSlot"}',
        b"[1,2]",
    ):
        assert http.post(localnet.url, content=garbage).status_code == 200
    assert http.post(localnet.url, json=call("getHealth")).json()["result"] == "ok"
