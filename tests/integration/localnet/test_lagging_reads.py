"""lag_slots: an endpoint whose whole view of the chain is N slots old, as a real node that
fell behind would show it: history, accounts, heights, context slots and minContextSlot."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from solders.keypair import Keypair

from localnet import Faults, LocalnetServer

from .chain import lamport_transfer

pytestmark = pytest.mark.localnet(endpoints=3)


LAG = 5
AMOUNT = 1_000_000


def call(http: httpx2.Client, url: str, method: str, *params: Any) -> dict[str, Any]:
    answer = http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    )
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def result(http: httpx2.Client, url: str, method: str, *params: Any) -> Any:
    body = call(http, url, method, *params)
    assert "error" not in body, body
    return body["result"]


class Landed:
    """A transfer that landed at ``slot`` (seen by a healthy endpoint), and the lagging URL."""

    def __init__(self, localnet: LocalnetServer) -> None:
        payer = localnet.fixtures.fund_wallet()
        self.recipient = Keypair().pubkey()
        localnet.advance_slots(20)
        localnet.set_faults(1, Faults(lag_slots=LAG))
        transaction = lamport_transfer(
            payer,
            self.recipient,
            AMOUNT,
            localnet.ledger.blockhash_at(localnet.ledger.slot).blockhash,
        )
        self.signature = str(transaction.signatures[0])
        localnet.ledger.submit(transaction, signatures_verified=False)
        self.slot = localnet.advance_slots(1)
        # One slot more, so the healthy endpoint has it at confirmed too.
        self.lagging_slot = localnet.advance_slots(1) - LAG
        self.healthy, self.lagging = localnet.urls[0], localnet.urls[1]


@pytest.fixture
def landed(localnet: LocalnetServer) -> Landed:
    return Landed(localnet)


def test_a_lagging_endpoint_does_not_show_a_transaction_landed_after_its_tip(
    http: httpx2.Client, landed: Landed
) -> None:
    """History searched, by signature, by address and in full: the lagging endpoint has
    not seen it (with its lagged slot as context), the healthy one has."""
    history = {"searchTransactionHistory": True}
    lagging = result(http, landed.lagging, "getSignatureStatuses", [landed.signature], history)
    assert lagging["value"] == [None]
    assert lagging["context"]["slot"] == landed.lagging_slot
    healthy = result(http, landed.healthy, "getSignatureStatuses", [landed.signature], history)
    assert healthy["value"][0]["slot"] == landed.slot
    confirmed = {"commitment": "confirmed"}
    address = str(landed.recipient)
    assert result(http, landed.lagging, "getSignaturesForAddress", address, confirmed) == []
    assert result(http, landed.lagging, "getTransaction", landed.signature, confirmed) is None
    assert len(result(http, landed.healthy, "getSignaturesForAddress", address, confirmed)) == 1
    assert result(http, landed.healthy, "getTransaction", landed.signature, confirmed) is not None


def test_a_lagging_endpoint_reads_accounts_and_heights_as_of_its_slot(
    http: httpx2.Client, landed: Landed
) -> None:
    """Account reads show the state of its lagged slot; getEpochInfo, getBlockHeight and
    getSlot answer for that slot, at each commitment."""
    address = str(landed.recipient)
    for commitment, depth in (("processed", 0), ("confirmed", 1)):
        config = {"commitment": commitment, "encoding": "base64"}
        slot = landed.lagging_slot - depth
        info = result(http, landed.lagging, "getAccountInfo", address, config)
        assert info == {"context": {"slot": slot, "apiVersion": "2.2.0"}, "value": None}
        many = result(http, landed.lagging, "getMultipleAccounts", [address], config)
        assert many["context"]["slot"] == slot and many["value"] == [None]
        epoch = result(http, landed.lagging, "getEpochInfo", {"commitment": commitment})
        assert (epoch["absoluteSlot"], epoch["blockHeight"]) == (slot, slot)
        # The transfer landed after its slot: it is not counted there yet.
        healthy = result(http, landed.healthy, "getEpochInfo", {"commitment": commitment})
        assert epoch["transactionCount"] == healthy["transactionCount"] - 1
        height = result(http, landed.lagging, "getBlockHeight", {"commitment": commitment})
        assert height == slot
        assert result(http, landed.lagging, "getSlot", {"commitment": commitment}) == slot
    fresh = result(
        http,
        landed.healthy,
        "getAccountInfo",
        address,
        {"encoding": "base64", "commitment": "processed"},
    )
    assert fresh["value"]["lamports"] == AMOUNT


def test_every_context_slot_of_a_lagging_endpoint_is_its_lagged_slot(
    http: httpx2.Client, landed: Landed
) -> None:
    """Every answer that carries a context carries the slot it was read at, never the tip."""
    address = str(landed.recipient)
    processed = {"commitment": "processed"}
    blockhash = result(http, landed.healthy, "getLatestBlockhash", processed)["value"]["blockhash"]
    asks: list[tuple[str, tuple[Any, ...]]] = [
        ("getBalance", (address, processed)),
        ("getAccountInfo", (address, processed)),
        ("getMultipleAccounts", ([address], processed)),
        ("getLatestBlockhash", (processed,)),
        ("isBlockhashValid", (blockhash, processed)),
        ("getSignatureStatuses", ([landed.signature],)),
        (
            "getProgramAccounts",
            (
                "11111111111111111111111111111111",
                {**processed, "withContext": True, "filters": [{"dataSize": 7}]},
            ),
        ),
    ]
    for method, params in asks:
        answer = result(http, landed.lagging, method, *params)
        assert answer["context"]["slot"] == landed.lagging_slot, method
    assert result(http, landed.lagging, "isBlockhashValid", blockhash, processed)["value"] is False


def test_min_context_slot_past_a_lagging_endpoint_s_slot_is_error_32016(
    http: httpx2.Client, landed: Landed
) -> None:
    """As Agave: -32016 "Minimum context slot has not been reached" with the slot it has,
    for every method that takes minContextSlot; at or below its slot, it answers."""
    address = str(landed.recipient)
    ahead = {"commitment": "processed", "minContextSlot": landed.slot}
    asks: list[tuple[str, tuple[Any, ...]]] = [
        ("getAccountInfo", (address, ahead)),
        ("getMultipleAccounts", ([address], ahead)),
        ("getBalance", (address, ahead)),
        ("getEpochInfo", (ahead,)),
        ("getBlockHeight", (ahead,)),
        ("getSlot", (ahead,)),
        ("getLatestBlockhash", (ahead,)),
        (
            "getSignaturesForAddress",
            (address, {"commitment": "confirmed", "minContextSlot": landed.slot}),
        ),
    ]
    for method, params in asks:
        body = call(http, landed.lagging, method, *params)
        assert body["error"]["code"] == -32016, method
        assert body["error"]["message"] == "Minimum context slot has not been reached"
        assert body["error"]["data"]["contextSlot"] <= landed.lagging_slot
        assert "error" not in call(http, landed.healthy, method, *params), method
    at_its_slot = {"commitment": "processed", "minContextSlot": landed.lagging_slot}
    assert result(http, landed.lagging, "getAccountInfo", address, at_its_slot)["value"] is None


def test_a_lagging_endpoint_shows_the_transaction_once_it_catches_up(
    http: httpx2.Client, localnet: LocalnetServer, landed: Landed
) -> None:
    """The lag is a distance, not a gap: LAG slots later the lagging endpoint sees it too."""
    localnet.advance_slots(LAG - 1)
    history = {"searchTransactionHistory": True}
    answer = result(http, landed.lagging, "getSignatureStatuses", [landed.signature], history)
    assert answer["value"][0]["slot"] == landed.slot
    assert answer["context"]["slot"] == landed.slot
