"""Starting and stopping a localnet embedded in another program."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx2
import pytest
from loguru import logger

from localnet import (
    EndpointNotFound,
    Faults,
    LocalnetConfig,
    LocalnetNotRunning,
    LocalnetServer,
    LocalnetStartFailed,
)


def test_without_pubsub_endpoints_listen_on_consecutive_ports() -> None:
    """pubsub_port_offset=0 turns PubSub off; JSON-RPC ports are then p, p+1, p+2."""
    config = LocalnetConfig(port=0, endpoints=3, slot_ms=0, pubsub_port_offset=0)
    with LocalnetServer(config) as localnet:
        ports = [int(url.rsplit(":", 1)[1]) for url in localnet.urls]
        assert ports == [ports[0], ports[0] + 1, ports[0] + 2]
        assert localnet.pubsub_urls == (None, None, None)


def rpc(url: str, method: str, *params: Any) -> Any:
    with httpx2.Client(timeout=5) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        return http.post(url, json=body).json()["result"]


def test_endpoints_listen_every_other_port_with_pubsub_on_port_plus_one_over_one_ledger() -> None:
    """Three endpoints on p, p+2, p+4 (PubSub on p+1, p+3, p+5, as a node's RPC port + 1),
    all reading the same slots and accounts."""
    with LocalnetServer(LocalnetConfig(port=0, endpoints=3, slot_ms=0)) as localnet:
        ports = [int(url.rsplit(":", 1)[1]) for url in localnet.urls]
        assert ports == [ports[0], ports[0] + 2, ports[0] + 4]
        pubsub = [f"ws://127.0.0.1:{port + 1}" for port in ports]
        assert list(localnet.pubsub_urls) == pubsub
        wallet = localnet.fixtures.fund_wallet(7_000_000)
        localnet.advance_slots(4)
        processed = {"commitment": "processed"}
        assert {rpc(url, "getSlot", processed) for url in localnet.urls} == {4}
        balances = {
            rpc(url, "getBalance", str(wallet.pubkey()), processed)["value"]
            for url in localnet.urls
        }
        assert balances == {7_000_000}


def test_a_taken_port_fails_start_with_a_clear_error() -> None:
    """If a port of the run is in use, start() raises LocalnetStartFailed naming the ports."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        localnet = LocalnetServer(LocalnetConfig(port=taken - 1, endpoints=2, slot_ms=0))
        # Two endpoints with PubSub take p..p+3 (RPC p, p+2; PubSub p+1, p+3).
        with pytest.raises(LocalnetStartFailed, match=f"{taken - 1}..{taken + 2}"):
            localnet.start()
        assert not localnet.running


def test_stop_closes_every_listener_and_is_idempotent() -> None:
    """After stop() nothing listens any more, and a second stop() does nothing."""
    localnet = LocalnetServer(LocalnetConfig(port=0, endpoints=2, slot_ms=0)).start()
    urls = localnet.urls
    localnet.stop()
    localnet.stop()
    for url in urls:
        with pytest.raises(httpx2.ConnectError):
            rpc(url, "getHealth")


def test_stop_releases_requests_hung_by_a_fault() -> None:
    """A hanging endpoint does not keep stop() waiting: hung requests are reset."""
    hung = threading.Event()

    def watch(message: Any) -> None:
        if message.record["extra"].get("action") == "localnet.request_hung":
            hung.set()

    sink = logger.add(watch, level="DEBUG")
    outcome: list[BaseException] = []
    localnet = LocalnetServer(LocalnetConfig(port=0, slot_ms=0)).start()
    try:
        localnet.set_faults(0, Faults(hang=True))
        with httpx2.Client(timeout=5) as http:

            def hung_call() -> None:
                try:
                    http.post(localnet.url, json={"jsonrpc": "2.0", "id": 1, "method": "getSlot"})
                except httpx2.HTTPError as error:
                    outcome.append(error)

            caller = threading.Thread(target=hung_call)
            caller.start()
            assert hung.wait(5), "the request never reached the hanging endpoint"
            localnet.stop()
            caller.join(5)
    finally:
        localnet.stop()
        logger.remove(sink)
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx2.TransportError)
    assert not isinstance(outcome[0], httpx2.TimeoutException)


def test_the_python_api_refuses_work_when_not_running_or_out_of_range() -> None:
    """Fault calls need a running localnet and a real endpoint index."""
    localnet = LocalnetServer(LocalnetConfig(port=0, endpoints=2, slot_ms=0))
    with pytest.raises(LocalnetNotRunning):
        localnet.set_faults(0, Faults(down=True))
    with localnet:
        with pytest.raises(EndpointNotFound):
            localnet.set_faults(2, Faults(down=True))
        with pytest.raises(LocalnetStartFailed):
            localnet.start()


def test_an_endpoint_whose_port_was_taken_while_down_stays_down_with_an_error() -> None:
    """Coming back up needs the same port; if another socket took it, the call fails and
    the endpoint keeps its down fault until the port is free again."""
    with LocalnetServer(LocalnetConfig(port=0, endpoints=2, slot_ms=0)) as localnet:
        port = int(localnet.urls[1].rsplit(":", 1)[1])
        localnet.set_faults(1, Faults(down=True))
        with socket.socket() as squatter:
            # Over the endpoint's own closed connections in TIME_WAIT on that port (a CI
            # run failed EADDRINUSE here); a listener still bound to it would refuse this.
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            with pytest.raises(LocalnetStartFailed, match=f"port {port}"):
                localnet.clear_faults(1)
            assert localnet.faults(1) == Faults(down=True)
        localnet.clear_faults(1)
        assert rpc(localnet.urls[1], "getHealth") == "ok"
