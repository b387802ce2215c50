"""Test doubles: a transport the test answers by hand, and a router the test answers by hand."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from actors.rpc.classify import AttemptResult, HttpReply
from actors.rpc.messages import RpcRequest
from actors.rpc.transport import OnDone


@dataclass
class Posted:
    url: str
    body: bytes
    timeout_s: float
    on_done: OnDone

    @property
    def method(self) -> str:
        return str(json.loads(self.body)["method"])

    def answer(self, result: Any, status: int = 200) -> None:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode()
        self.on_done(HttpReply(status, body, 0.001))

    def error(self, code: int, message: str = "error") -> None:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}})
        self.on_done(HttpReply(200, body.encode(), 0.001))

    def fail(self, result: AttemptResult) -> None:
        self.on_done(result)


class FakeTransport:
    """Probes are answered at once (healthy, at ``slot``); everything else waits for the test."""

    def __init__(self, slot: int = 100) -> None:
        self.slot = slot
        self.posted: list[Posted] = []
        self.started = False
        self.closed = False
        self._condition = threading.Condition()

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True

    def submit(self, url: str, body: bytes, timeout_s: float, on_done: OnDone) -> None:
        posted = Posted(url, body, timeout_s, on_done)
        if json.loads(body)["id"] in ("probe-getHealth", "probe-getSlot"):
            posted.answer("ok" if posted.method == "getHealth" else self.slot)
            return
        with self._condition:
            self.posted.append(posted)
            self._condition.notify_all()

    def wait_posted(self, count: int, timeout_s: float = 5.0) -> list[Posted]:
        with self._condition:
            if not self._condition.wait_for(lambda: len(self.posted) >= count, timeout_s):
                pytest.fail(f"only {len(self.posted)} requests posted, expected {count}")
            return list(self.posted)


class FakeRouter:
    """Stands where the router's handle would: records requests for the test to answer."""

    def __init__(self) -> None:
        self.requests: list[RpcRequest] = []
        self._condition = threading.Condition()

    def tell(self, message: Any) -> None:
        with self._condition:
            self.requests.append(message)
            self._condition.notify_all()

    def wait_requests(self, count: int, timeout_s: float = 5.0) -> list[RpcRequest]:
        with self._condition:
            if not self._condition.wait_for(lambda: len(self.requests) >= count, timeout_s):
                pytest.fail(f"only {len(self.requests)} requests, expected {count}")
            return list(self.requests)
