"""The JSON-RPC 2.0 envelope around the methods, tested with a table of fake methods."""

from __future__ import annotations

import json
from typing import Any

import pytest
from solders.rpc.responses import GetSlotResp

from localnet.rpc_dispatch import RpcDispatcher, error_for_each, with_id
from localnet.rpc_errors import RpcError


class Panic(BaseException):
    """Stands in for pyo3's PanicException, which is not an Exception."""


def slot(context: Any, params: Any) -> GetSlotResp:
    return GetSlotResp(int(params.value(0) or 0))


def refuse(context: Any, params: Any) -> GetSlotResp:
    raise RpcError.invalid_params("Invalid param: Invalid")


def panic(context: Any, params: Any) -> GetSlotResp:
    raise Panic("called `Option::unwrap()` on a `None` value")


DISPATCHER = RpcDispatcher({"slot": (slot, 0, 1), "refuse": (refuse, 0, 0), "panic": (panic, 0, 0)})


def answer(body: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    text = DISPATCHER.handle(raw, lambda: None)  # type: ignore[arg-type, return-value]
    return None if text is None else json.loads(text)


def request(method: str, *params: Any, request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}


@pytest.mark.parametrize("request_id", [1, "abc", 0, None, 2**40])
def test_the_answer_carries_the_request_id(request_id: Any) -> None:
    """Whatever valid id came in goes back out, string or number or null."""
    assert answer(request("slot", 7, request_id=request_id)) == {
        "jsonrpc": "2.0",
        "result": 7,
        "id": request_id,
    }


def test_a_notification_gets_no_answer_but_is_still_run() -> None:
    """No "id" member: nothing is written back."""
    assert answer({"jsonrpc": "2.0", "method": "slot"}) is None


def test_errors_raised_by_methods_become_error_objects() -> None:
    """RpcError from a method is answered with its code and message."""
    assert answer(request("refuse"))["error"] == {
        "code": -32602,
        "message": "Invalid param: Invalid",
    }


def test_a_panicking_method_is_an_internal_error_not_a_crash() -> None:
    """Even a BaseException from native code becomes -32603; the dispatcher keeps working."""
    assert answer(request("panic"))["error"] == {"code": -32603, "message": "Internal error"}
    assert answer(request("slot", 3))["result"] == 3


def test_too_many_params_are_refused_before_the_method_runs() -> None:
    """The method table bounds the parameter count."""
    error = answer(request("slot", 1, 2))["error"]
    assert error["code"] == -32602
    assert "expected at most 1" in error["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", -32700),
        (b"\x80", -32700),
        (b"[]", -32600),
        (b"true", -32600),
        ({"jsonrpc": "2.0", "id": 1}, -32600),
        ({"jsonrpc": "2.0", "id": [1], "method": "slot"}, -32600),
        ({"jsonrpc": "2.0", "id": 1, "method": "other"}, -32601),
        ({"jsonrpc": "2.0", "id": 1, "method": "slot", "params": {"a": 1}}, -32602),
    ],
)
def test_malformed_bodies_get_their_standard_codes(body: Any, code: int) -> None:
    """Parse error, invalid request, method not found, invalid params."""
    assert answer(body)["error"]["code"] == code


def test_a_batch_answers_in_order_and_leaves_out_notifications() -> None:
    """One answer per request with an id, in order; a batch of notifications answers nothing."""
    batch = [
        request("slot", 1, request_id="a"),
        {"jsonrpc": "2.0", "method": "slot"},
        request("refuse", request_id="b"),
    ]
    assert [item["id"] for item in answer(batch)] == ["a", "b"]
    assert answer([{"jsonrpc": "2.0", "method": "slot"}]) is None


def test_with_id_replaces_the_solders_placeholder_id() -> None:
    """solders serializes id 0; the request's id takes its place, other fields untouched."""
    assert json.loads(with_id(GetSlotResp(5).to_json(), "x")) == {
        "jsonrpc": "2.0",
        "result": 5,
        "id": "x",
    }


def test_error_for_each_answers_every_request_of_a_batch() -> None:
    """A fault in front of the node fails each request of a batch with its own id."""
    body = json.dumps([request("slot", request_id=1), request("slot", request_id=2)]).encode()
    answers = json.loads(error_for_each(body, RpcError.node_behind(12)))
    assert [(item["id"], item["error"]["code"]) for item in answers] == [(1, -32005), (2, -32005)]
    assert answers[0]["error"]["data"] == {"numSlotsBehind": 12}
