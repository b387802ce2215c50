"""prune_history_slots: an endpoint that has forgotten transactions older than N slots,
seen over HTTP: getTransaction, getSignaturesForAddress, and the history search of
getSignatureStatuses (its status cache, as a real node's, still answers)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from solders.keypair import Keypair

from localnet import Faults, InvalidFaults, LocalnetServer

from .chain import lamport_transfer

pytestmark = pytest.mark.localnet(endpoints=3)


PRUNE = 50
CONFIRMED = {"commitment": "confirmed"}
HISTORY = {"searchTransactionHistory": True}


def result(http: httpx2.Client, url: str, method: str, *params: Any) -> Any:
    answer = http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    )
    body = answer.json()
    assert "error" not in body, body
    return body["result"]


def land_transfer(localnet: LocalnetServer) -> tuple[str, str, int]:
    """A transfer to a new address, landed; its signature, the address and its slot."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()
    blockhash = localnet.ledger.blockhash_at(localnet.ledger.slot).blockhash
    transaction = lamport_transfer(payer, recipient, 1_000_000, blockhash)
    localnet.ledger.submit(transaction, signatures_verified=False)
    slot = localnet.advance_slots(1)
    return str(transaction.signatures[0]), str(recipient), slot


def test_a_pruned_endpoint_forgets_old_transactions_and_keeps_recent_ones(
    http: httpx2.Client, localnet: LocalnetServer
) -> None:
    """Older than N slots: no getTransaction, no getSignaturesForAddress entry (the healthy
    endpoint has both); newer: both still there."""
    old_signature, old_address, _ = land_transfer(localnet)
    localnet.advance_slots(PRUNE + 5)
    new_signature, new_address, _ = land_transfer(localnet)
    localnet.advance_slots(2)
    localnet.set_faults(1, Faults(prune_history_slots=PRUNE))
    pruned, healthy = localnet.urls[1], localnet.urls[0]
    assert result(http, pruned, "getTransaction", old_signature, CONFIRMED) is None
    assert result(http, pruned, "getSignaturesForAddress", old_address, CONFIRMED) == []
    assert result(http, healthy, "getTransaction", old_signature, CONFIRMED) is not None
    assert len(result(http, healthy, "getSignaturesForAddress", old_address, CONFIRMED)) == 1
    assert result(http, pruned, "getTransaction", new_signature, CONFIRMED) is not None
    listed = result(http, pruned, "getSignaturesForAddress", new_address, CONFIRMED)
    assert [entry["signature"] for entry in listed] == [new_signature]


def test_a_pruned_endpoint_loses_statuses_once_they_leave_the_status_cache(
    http: httpx2.Client, localnet: LocalnetServer
) -> None:
    """Within the status cache a pruned endpoint still knows the status; beyond it, the
    history search finds nothing there, while a healthy endpoint's search still does."""
    signature, _, slot = land_transfer(localnet)
    localnet.set_faults(1, Faults(prune_history_slots=PRUNE))
    pruned, healthy = localnet.urls[1], localnet.urls[0]
    localnet.advance_slots(PRUNE + 10)
    assert (
        result(http, pruned, "getSignatureStatuses", [signature], HISTORY)["value"][0]["slot"]
        == slot
    )
    localnet.advance_slots(localnet.config.status_cache_slots)
    assert result(http, pruned, "getSignatureStatuses", [signature], HISTORY)["value"] == [None]
    assert result(http, pruned, "getSignatureStatuses", [signature])["value"] == [None]
    assert (
        result(http, healthy, "getSignatureStatuses", [signature], HISTORY)["value"][0]["slot"]
        == slot
    )


def test_prune_history_slots_is_checked_by_name() -> None:
    """A negative or non-integer prune_history_slots is refused, naming the field."""
    with pytest.raises(InvalidFaults, match="prune_history_slots"):
        Faults.from_json({"prune_history_slots": -1})
