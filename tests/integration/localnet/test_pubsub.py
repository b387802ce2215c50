"""WebSocket PubSub on each endpoint's port + 1, spoken as a Solana node speaks it.

Every notification (but ``receivedSignature``, which solders cannot parse) is
parsed by solders' ``parse_websocket_message``, the parser solana-py uses.
Absence is proven by order, never by waiting: a slot subscription made after
the subscription under test is notified after it within one wake, so a slot
notification arriving first means nothing else was due.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from solders.keypair import Keypair
from solders.rpc.responses import parse_websocket_message

from localnet import Faults, LocalnetServer

from .chain import lamport_transfer, run

RECEIVE_TIMEOUT_S = 5.0


# Finalized two slots after confirmed, so each commitment is seen apart in a few slots.
pytestmark = pytest.mark.localnet(endpoints=2, finalization_depth_slots=2)


class Socket:
    """A raw PubSub connection: JSON-RPC requests out, answers and notifications in."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = iter(range(1, 10_000))

    async def call(self, method: str, *params: Any) -> dict[str, Any]:
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
        await self._socket.send_str(json.dumps(body))
        answer = await self.receive()
        assert answer["id"] == request_id, answer
        return answer

    async def subscribe(self, method: str, *params: Any) -> int:
        answer = await self.call(method, *params)
        assert isinstance(answer.get("result"), int), answer
        return int(answer["result"])

    async def receive(self) -> dict[str, Any]:
        text = await asyncio.wait_for(self._socket.receive_str(), RECEIVE_TIMEOUT_S)
        message: dict[str, Any] = json.loads(text)
        result = message.get("params", {}).get("result")
        received = isinstance(result, dict) and result.get("value") == "receivedSignature"
        if "method" in message and not received:
            parse_websocket_message(text)  # raises if solders (solana-py) could not read it
        return message

    async def notification(self, subscription: int) -> Any:
        message = await self.receive()
        assert message["params"]["subscription"] == subscription, message
        return message["params"]["result"]


@asynccontextmanager
async def pubsub(url: str | None) -> AsyncIterator[Socket]:
    assert url is not None
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as socket:
        yield Socket(socket)


async def advance(localnet: LocalnetServer, slots: int = 1) -> None:
    """Produce slots from a worker thread, as the slot timer would, off the client's loop."""
    await asyncio.to_thread(localnet.advance_slots, slots)


def _send(localnet: LocalnetServer, lamports: int = 1_000_000) -> tuple[str, Keypair]:
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair()
    blockhash = localnet.ledger.blockhash_at(localnet.ledger.slot).blockhash
    transaction = lamport_transfer(payer, recipient.pubkey(), lamports, blockhash)
    localnet.ledger.submit(transaction, signatures_verified=True)
    return str(transaction.signatures[0]), recipient


def test_signature_subscribe_notifies_at_the_asked_commitment_then_ends(
    localnet: LocalnetServer,
) -> None:
    """receivedSignature first (asked for), then one notification once the landing slot is
    confirmed (not at processed), then the subscription is gone (unsubscribe refused)."""

    async def scenario() -> None:
        async with pubsub(localnet.pubsub_urls[0]) as ws:
            signature, _ = _send(localnet)
            options = {"commitment": "confirmed", "enableReceivedNotification": True}
            sub = await ws.subscribe("signatureSubscribe", signature, options)
            assert (await ws.notification(sub))["value"] == "receivedSignature"
            slots = await ws.subscribe("slotSubscribe")
            await advance(localnet)  # lands at slot 1: processed only
            assert (await ws.notification(slots))["slot"] == 1
            await advance(localnet)  # slot 1 confirmed
            assert await ws.notification(sub) == {"context": {"slot": 1}, "value": {"err": None}}
            assert (await ws.notification(slots))["slot"] == 2
            refused = await ws.call("signatureUnsubscribe", sub)
            assert refused["error"] == {"code": -32602, "message": "Invalid subscription id."}

    run(scenario())


def test_a_signature_already_at_the_commitment_is_notified_right_after_the_answer(
    localnet: LocalnetServer,
) -> None:
    """Subscribing to a landed, finalized signature answers with the id, then notifies."""

    async def scenario() -> None:
        signature, _ = _send(localnet)
        await advance(localnet, 5)
        async with pubsub(localnet.pubsub_urls[0]) as ws:
            sub = await ws.subscribe("signatureSubscribe", signature, {"commitment": "finalized"})
            assert (await ws.notification(sub))["value"] == {"err": None}

    run(scenario())


def test_slot_and_root_notifications_follow_the_chain(localnet: LocalnetServer) -> None:
    """slotNotification per slot with parent and root; rootNotification as roots advance."""

    async def scenario() -> None:
        async with pubsub(localnet.pubsub_urls[0]) as ws:
            roots = await ws.subscribe("rootSubscribe")
            slots = await ws.subscribe("slotSubscribe")
            await advance(localnet, 4)  # processed 4, confirmed 3, finalized 1
            assert await ws.notification(roots) == 1
            for slot in range(1, 5):
                assert await ws.notification(slots) == {"parent": slot - 1, "root": 1, "slot": slot}

    run(scenario())


def test_account_subscribe_sends_the_changed_account_in_base64(localnet: LocalnetServer) -> None:
    """accountNotification carries the account as getAccountInfo shows it, with space."""

    async def scenario() -> None:
        async with pubsub(localnet.pubsub_urls[0]) as ws:
            _, recipient = _send(localnet, 2_500_000)
            options = {"commitment": "processed", "encoding": "base64"}
            sub = await ws.subscribe("accountSubscribe", str(recipient.pubkey()), options)
            await advance(localnet)
            note = await ws.notification(sub)
            assert note["context"] == {"slot": 1}
            assert note["value"]["lamports"] == 2_500_000
            assert note["value"]["data"] == ["", "base64"]
            assert note["value"]["space"] == 0

    run(scenario())


def test_logs_subscribe_filters_by_mention(localnet: LocalnetServer) -> None:
    """logsSubscribe with mentions hears only transactions naming that address."""

    async def scenario() -> None:
        async with pubsub(localnet.pubsub_urls[0]) as ws:
            first, first_recipient = _send(localnet)
            _send(localnet)
            mentions = {"mentions": [str(first_recipient.pubkey())]}
            only = await ws.subscribe("logsSubscribe", mentions, {"commitment": "processed"})
            every = await ws.subscribe("logsSubscribe", "all", {"commitment": "processed"})
            await advance(localnet)
            note = await ws.notification(only)
            assert note["value"]["signature"] == first and note["value"]["err"] is None
            assert note["value"]["logs"][0].startswith("Program 11111111111111111111111111111111")
            assert (await ws.notification(every))["value"]["signature"] == first
            assert (await ws.notification(every))["value"]["signature"] != first

    run(scenario())


def test_unsubscribe_answers_true_and_stops_notifications(localnet: LocalnetServer) -> None:
    """slotUnsubscribe: true; afterwards only the remaining subscription is notified."""

    async def scenario() -> None:
        async with pubsub(localnet.pubsub_urls[0]) as ws:
            gone = await ws.subscribe("slotSubscribe")
            kept = await ws.subscribe("rootSubscribe")
            assert (await ws.call("slotUnsubscribe", gone))["result"] is True
            await advance(localnet, 4)
            assert await ws.notification(kept) == 1
            unknown = await ws.call("fooSubscribe")
            assert unknown["error"]["code"] == -32601

    run(scenario())


def test_a_lagging_endpoint_notifies_late_and_a_down_one_closes_pubsub(
    localnet: LocalnetServer,
) -> None:
    """lag_slots holds slot notifications back; down closes open PubSub connections."""

    async def scenario() -> None:
        async with pubsub(localnet.pubsub_urls[1]) as ws:
            slots = await ws.subscribe("slotSubscribe")
            await asyncio.to_thread(localnet.set_faults, 1, Faults(lag_slots=2))
            await advance(localnet, 3)
            assert (await ws.notification(slots))["slot"] == 1
            await asyncio.to_thread(localnet.set_faults, 1, Faults(down=True))
            closed = await asyncio.wait_for(ws._socket.receive(), RECEIVE_TIMEOUT_S)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await asyncio.to_thread(localnet.clear_faults, 1)
        async with pubsub(localnet.pubsub_urls[1]) as ws:
            assert isinstance(await ws.subscribe("slotSubscribe"), int)

    run(scenario())


def test_account_subscribe_in_json_parsed_shows_a_token_account_parsed(
    localnet: LocalnetServer,
) -> None:
    """accountSubscribe with jsonParsed sends a token account as spl-token's parsed info."""
    mint = localnet.fixtures.create_mint(decimals=2)
    owner = Keypair().pubkey()
    token_account = localnet.fixtures.fund_token_account(owner, mint, 0)

    async def scenario() -> None:
        async with pubsub(localnet.pubsub_urls[0]) as ws:
            options = {"commitment": "processed", "encoding": "jsonParsed"}
            sub = await ws.subscribe("accountSubscribe", str(token_account), options)
            await asyncio.to_thread(localnet.fixtures.mint_to, mint, token_account, 1234)
            await advance(localnet)
            data = (await ws.notification(sub))["value"]["data"]
            assert data["program"] == "spl-token" and data["parsed"]["type"] == "account"
            assert data["parsed"]["info"]["tokenAmount"]["uiAmountString"] == "12.34"
            assert data["parsed"]["info"]["owner"] == str(owner)

    run(scenario())


def test_slots_updates_subscribe_streams_created_frozen_confirmed_and_rooted_slots(
    localnet: LocalnetServer,
) -> None:
    """slotsUpdatesSubscribe (once -32601) sends Agave's SlotUpdate kinds, each read by
    solders: every slot's bank created then frozen, then optimistic confirmation, then
    root, as the chain advances."""

    async def scenario() -> None:
        async with pubsub(localnet.pubsub_urls[0]) as ws:
            updates = await ws.subscribe("slotsUpdatesSubscribe")
            await advance(localnet, 4)  # processed 4, confirmed 3, finalized 1
            seen = [await ws.notification(updates) for _ in range(4 * 2 + 3 + 1)]
            kinds = [(note["type"], note["slot"]) for note in seen]
            assert kinds[:2] == [("createdBank", 1), ("frozen", 1)]
            assert ("optimisticConfirmation", 3) in kinds and ("root", 1) in kinds
            assert seen[1]["stats"]["numFailedTransactions"] == 0
            assert await ws.call("slotsUpdatesUnsubscribe", updates) == {
                "jsonrpc": "2.0",
                "result": True,
                "id": 2,
            }

    run(scenario())


def test_an_endpoint_dropping_notifications_loses_them_and_the_subscription_goes_on(
    localnet: LocalnetServer,
) -> None:
    """drop_notifications=1 leaves every notification unsent while the chain moves (a
    lossy provider); once healed, the same subscription resumes with the next slot, so
    the client never sees the slots produced meanwhile."""

    async def scenario() -> None:
        async with pubsub(localnet.pubsub_urls[1]) as ws:
            slots = await ws.subscribe("slotSubscribe")
            await asyncio.to_thread(localnet.set_faults, 1, Faults(drop_notifications=1.0))
            await advance(localnet, 3)
            await asyncio.to_thread(localnet.clear_faults, 1)
            await advance(localnet, 1)
            assert (await ws.notification(slots))["slot"] == 4

    run(scenario())
