"""The admin HTTP routes: set, read and clear faults, produce slots, report status."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from localnet import FaultError, Faults, LocalnetServer

pytestmark = pytest.mark.localnet(endpoints=3)


RPC_GET_SLOT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "getSlot",
    "params": [{"commitment": "processed"}],
}


def test_posting_faults_sets_them_and_delete_clears_them(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """POST /admin/faults replaces the endpoint's faults; DELETE heals it."""
    url = localnet.urls[1]
    answer = http.post(f"{url}/admin/faults", json={"error_rate": 1.0, "error": "http_502"})
    assert answer.status_code == 200
    assert answer.json()["faults"]["error"] == "http_502"
    assert localnet.faults(1) == Faults(error_rate=1.0, error=FaultError.HTTP_502)
    assert http.post(url, json=RPC_GET_SLOT).status_code == 502
    assert http.get(f"{url}/admin/faults").json()["faults"]["error_rate"] == 1.0
    assert http.delete(f"{url}/admin/faults").status_code == 200
    assert http.post(url, json=RPC_GET_SLOT).json()["result"] == 0


def test_a_sibling_endpoint_can_bring_a_down_endpoint_back(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """A down endpoint's own admin route is unreachable, so another endpoint targets it by index."""
    first, second = localnet.urls[0], localnet.urls[1]
    assert http.post(f"{first}/admin/faults", json={"endpoint": 1, "down": True}).status_code == 200
    with pytest.raises(httpx2.ConnectError):
        http.post(second, json=RPC_GET_SLOT)
    assert http.delete(f"{first}/admin/faults", params={"endpoint": 1}).status_code == 200
    assert http.post(second, json=RPC_GET_SLOT).json()["result"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"latency_ms": -5}, "latency_ms"),
        ({"error_rate": 2}, "error_rate"),
        ({"error": "http_418"}, "error"),
        ({"hang": "yes"}, "hang"),
        ({"slow": True}, "slow"),
        ({"endpoint": 9, "down": True}, "endpoint"),
    ],
)
def test_bad_fault_bodies_are_refused_naming_the_field(
    localnet: LocalnetServer, http: httpx2.Client, body: dict[str, Any], field: str
) -> None:
    """A 400 whose error names the offending field; the faults are left as they were."""
    answer = http.post(f"{localnet.url}/admin/faults", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(f"{field}:")
    assert localnet.faults(0) == Faults()


def test_admin_slots_and_status_drive_and_describe_the_localnet(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """POST /admin/slots produces slots; GET /admin/status lists slot, endpoints and faults."""
    assert http.post(f"{localnet.url}/admin/slots", json={"advance": 7}).json()["slot"] == 7
    localnet.set_faults(2, Faults(lag_slots=3))
    status = http.get(f"{localnet.urls[2]}/admin/status").json()
    assert status["slot"] == 7
    assert [endpoint["url"] for endpoint in status["endpoints"]] == list(localnet.urls)
    assert status["endpoints"][2]["faults"]["lag_slots"] == 3
    assert http.post(f"{localnet.url}/admin/slots", json={"advance": 0}).status_code == 400


def test_faults_do_not_apply_to_the_admin_routes(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """A hanging, always-failing endpoint still answers its admin route at once."""
    localnet.set_faults(0, Faults(hang=True, error_rate=1.0))
    assert http.get(f"{localnet.url}/admin/faults").json()["faults"]["hang"] is True
    assert http.delete(f"{localnet.url}/admin/faults").status_code == 200
    assert http.post(localnet.url, json=RPC_GET_SLOT).json()["result"] == 0
