"""backends: one URL in front of several backends that disagree (a load-balanced
provider), set through the admin route, the config and the command line, over HTTP."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import httpx2
import pytest
from solders.keypair import Keypair

from crank_node.cli.localnet import parse_endpoint_faults, serve
from crank_node.cli.main import build_parser
from localnet import FaultError, Faults, InvalidFaults, LocalnetConfig, LocalnetServer

from .chain import lamport_transfer
from .test_cli import Announcements

pytestmark = pytest.mark.localnet(endpoints=3)


LAG = 10
HISTORY = {"searchTransactionHistory": True}


def rpc(http: httpx2.Client, url: str, method: str, *params: Any) -> httpx2.Response:
    return http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    )


def test_one_url_over_a_lagging_and_a_healthy_backend_gives_answers_that_disagree(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """Round robin: the same question about a just-landed transaction is answered "no
    status" at the lagging backend's slot, then found at the tip, alternately; each
    answer's context slot says which view it came from."""
    payer = localnet.fixtures.fund_wallet()
    localnet.advance_slots(20)
    blockhash = localnet.ledger.blockhash_at(localnet.ledger.slot).blockhash
    transaction = lamport_transfer(payer, Keypair().pubkey(), 1_000_000, blockhash)
    localnet.ledger.submit(transaction, signatures_verified=False)
    tip = localnet.advance_slots(1)
    balancer = {"backends": [{"lag_slots": LAG}, {}], "backend_choice": "round_robin"}
    assert http.post(f"{localnet.urls[1]}/admin/faults", json=balancer).status_code == 200
    signature = str(transaction.signatures[0])
    seen = []
    for _ in range(4):
        answer = rpc(http, localnet.urls[1], "getSignatureStatuses", [signature], HISTORY).json()
        status = answer["result"]["value"][0]
        seen.append(
            (answer["result"]["context"]["slot"], None if status is None else status["slot"])
        )
    assert seen == [(tip - LAG, None), (tip, tip)] * 2
    slots = [
        rpc(http, localnet.urls[1], "getSlot", {"commitment": "processed"}).json()["result"]
        for _ in range(2)
    ]
    assert slots == [tip - LAG, tip]


def test_a_balancer_over_a_lagging_and_a_pruned_backend_loses_history_on_one_of_them() -> None:
    """Set through the config: each backend keeps its own faults, so an old transaction is
    listed by one backend (only lagging) and forgotten by the other (pruned)."""
    balancer = Faults(backends=(Faults(lag_slots=2), Faults(prune_history_slots=20)))
    config = LocalnetConfig(port=0, endpoints=2, slot_ms=0, endpoint_faults=(Faults(), balancer))
    with LocalnetServer(config) as server, httpx2.Client(timeout=5) as http:
        assert server.faults(1) == balancer
        payer = server.fixtures.fund_wallet()
        blockhash = server.ledger.blockhash_at(server.ledger.slot).blockhash
        transaction = lamport_transfer(payer, Keypair().pubkey(), 1_000_000, blockhash)
        server.ledger.submit(transaction, signatures_verified=False)
        server.advance_slots(40)
        signature = str(transaction.signatures[0])
        found = [
            rpc(
                http, server.urls[1], "getTransaction", signature, {"commitment": "confirmed"}
            ).json()["result"]
            is not None
            for _ in range(4)
        ]
        assert found == [True, False, True, False]


def test_random_backend_choice_is_seeded_and_a_down_backend_is_a_502(
    http: httpx2.Client,
) -> None:
    """backend_choice random draws from the endpoint's seeded dice (the same fault_seed
    picks the same backends); a down backend answers HTTP 502, an erroring one its error."""

    def pattern() -> list[int]:
        config = LocalnetConfig(port=0, slot_ms=0, fault_seed=3)
        with LocalnetServer(config) as server:
            server.set_faults(
                0,
                Faults(
                    backends=(
                        Faults(down=True),
                        Faults(),
                        Faults(error_rate=1.0, error=FaultError.HTTP_429),
                    ),
                    backend_choice="random",
                ),
            )
            return [rpc(http, server.url, "getSlot").status_code for _ in range(30)]

    first = pattern()
    assert set(first) == {200, 429, 502}
    assert first == pattern()


def test_the_admin_route_shows_backends_and_refuses_bad_ones_by_name(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """GET /admin/faults and /admin/status list each backend's faults; a view fault on the
    front, a nested backend or an unknown choice is refused with the field named."""
    url = localnet.urls[2]
    body = {
        "backends": [{"lag_slots": 5}, {"prune_history_slots": 100}],
        "backend_choice": "random",
    }
    assert http.post(f"{url}/admin/faults", json=body).status_code == 200
    shown = http.get(f"{url}/admin/faults").json()["faults"]
    assert [backend["lag_slots"] for backend in shown["backends"]] == [5, 0]
    assert shown["backends"][1]["prune_history_slots"] == 100
    assert (
        http.get(f"{url}/admin/status").json()["endpoints"][2]["faults"]["backend_choice"]
        == "random"
    )
    refused = [
        ({"lag_slots": 3, "backends": [{}]}, "lag_slots: with backends"),
        ({"backends": [{"backends": [{}]}]}, "a backend has no backends"),
        ({"backends": [{"lag_slots": -1}]}, "backends[0].lag_slots"),
        ({"backends": {}}, "backends: expected a list"),
        ({"backends": [{}], "backend_choice": "least_busy"}, "backend_choice"),
    ]
    for bad, field in refused:
        answer = http.post(f"{url}/admin/faults", json=bad)
        assert answer.status_code == 400, bad
        assert field in answer.json()["error"], answer.json()
    assert localnet.faults(2).backend_choice == "random"


def test_the_localnet_command_starts_endpoints_with_the_faults_it_is_given() -> None:
    """--faults N:JSON sets endpoint N's faults at start; a bad one is a usage error naming it."""
    args = build_parser().parse_args(
        [
            "localnet",
            "--port",
            "0",
            "--endpoints",
            "2",
            "--slot-ms",
            "0",
            "--faults",
            '1:{"backends": [{"lag_slots": 4}, {}]}',
        ]
    )
    stop, out = threading.Event(), Announcements()
    outcome: list[int] = []
    server = threading.Thread(target=lambda: outcome.append(serve(args, stop, out)))
    server.start()
    try:
        assert out.written.wait(10), "the command never announced itself"
        urls = json.loads(out.getvalue())["urls"]
        with httpx2.Client(timeout=5) as http:
            faults = http.get(f"{urls[0]}/admin/faults", params={"endpoint": 1}).json()["faults"]
        assert faults["backends"][0]["lag_slots"] == 4
    finally:
        stop.set()
        server.join(10)
    assert outcome == [0]
    bad = build_parser().parse_args(
        ["localnet", "--port", "0", "--slot-ms", "0", "--faults", '0:{"lag_slot": 4}']
    )
    errors = io.StringIO()
    with pytest.raises(InvalidFaults, match="--faults 0: lag_slot: unknown fault"):
        parse_endpoint_faults(bad.faults, 1)
    assert serve(bad, threading.Event(), errors) == 2


def test_a_backend_that_takes_no_batches_refuses_the_batches_it_serves(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """Behind one URL, a backend with max_batch 1 and one without a limit, in turn: the same
    batch is refused with one -32600 object (id null) by the first and answered call by
    call by the second; a single call is answered by both."""
    balancer = {"backends": [{"max_batch": 1}, {}], "backend_choice": "round_robin"}
    assert http.post(f"{localnet.urls[1]}/admin/faults", json=balancer).status_code == 200
    batch = [{"jsonrpc": "2.0", "id": n, "method": "getSlot"} for n in (1, 2)]
    refused, answered = (http.post(localnet.urls[1], json=batch).json() for _ in range(2))
    assert refused["id"] is None and refused["error"]["code"] == -32600
    assert "exceeds this endpoint's limit of 1" in refused["error"]["message"]
    assert [answer["id"] for answer in answered] == [1, 2]
    singles = [rpc(http, localnet.urls[1], "getSlot").json() for _ in range(2)]
    assert all("result" in single for single in singles)
