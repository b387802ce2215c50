"""One endpoint's WebSocket PubSub, as a Solana node serves it on its RPC port + 1.

Requests are JSON-RPC 2.0 text frames (``signatureSubscribe``, ``slotSubscribe``,
``accountSubscribe``, ``programSubscribe``, ``logsSubscribe``, ``rootSubscribe``
and their unsubscribes). A subscribe answers with the subscription id; after
that, each slot the ledger produces wakes a pump on the event loop that polls
every subscription with the endpoint's current view (so its faults apply: a
lagging endpoint notifies late) and sends the notifications due, in order.
An endpoint that goes down closes every PubSub connection; one that drops
notifications (``drop_notifications``) leaves that share of them unsent, from
dice seeded by the endpoint's index, so a run repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web
from loguru import logger

from localnet.pubsub_subscriptions import SUBSCRIBE_METHODS, UNSUBSCRIBE_METHODS, Subscription
from localnet.rpc_context import RpcContext
from localnet.rpc_dispatch import error_response
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Params

__all__ = ["PubSub"]

# Agave's --rpc-pubsub-max-active-subscriptions is far larger; this bounds a runaway test.
MAX_SUBSCRIPTIONS_PER_CONNECTION = 10_000
MAX_MESSAGE_BYTES = 1024 * 1024


class _Connection:
    def __init__(self, socket: web.WebSocketResponse) -> None:
        self.socket = socket
        self.subscriptions: dict[int, Subscription] = {}


class PubSub:
    """The subscriptions of one endpoint's clients; every method runs on the event loop."""

    def __init__(self, endpoint_index: int, context: Callable[[], RpcContext]) -> None:
        self._index = endpoint_index
        self._context = context
        self._connections: set[_Connection] = set()
        self._ids = itertools.count(0)
        self._wake = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dice = random.Random(endpoint_index)  # noqa: S311  (fault dice, not secrets)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._pump_task = asyncio.create_task(self._pump())

    async def stop(self) -> None:
        await self.close_connections()
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None

    def slot_produced(self, slot: int) -> None:
        """The ledger's slot listener: any thread; wakes the pump on the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake.set)

    async def close_connections(self) -> None:
        for connection in list(self._connections):
            await connection.socket.close()
        self._connections.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """A WebSocket connection: requests in, answers and notifications out."""
        socket = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES)
        await socket.prepare(request)
        connection = _Connection(socket)
        self._connections.add(connection)
        logger.bind(action="localnet.pubsub_connected", endpoint=self._index).debug(
            "pubsub client connected"
        )
        try:
            async for message in socket:
                if message.type is WSMsgType.TEXT:
                    await self._answer(connection, message.data)
                elif message.type is WSMsgType.ERROR:
                    break
        finally:
            self._connections.discard(connection)
        return socket

    async def _answer(self, connection: _Connection, text: str) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            await connection.socket.send_str(error_response(RpcError.parse_error(), None))
            return
        request_id = request.get("id") if isinstance(request, dict) else None
        # One view for the subscription and what is due at once: a slot produced while
        # the answer is on its way is the pump's, so notifications keep their order.
        context = self._context()
        try:
            result, subscription = self._call(connection, request, context)
        except RpcError as error:
            await connection.socket.send_str(error_response(error, request_id))
            return
        answer = {"jsonrpc": "2.0", "result": result, "id": request_id}
        await connection.socket.send_str(json.dumps(answer, separators=(",", ":")))
        if subscription is not None:
            # What is already due (a signature already confirmed) follows the answer at once.
            await self._send_due(connection, result, subscription, context)

    def _call(
        self, connection: _Connection, request: Any, context: RpcContext
    ) -> tuple[Any, Subscription | None]:
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0":
            raise RpcError.invalid_request()
        method = request.get("method")
        raw_params = request.get("params")
        if method in UNSUBSCRIBE_METHODS:
            params = Params(raw_params, required=1, at_most=1)
            subscription_id = params.u64(0)
            found = connection.subscriptions.get(subscription_id)
            if found is None or found.kind != _notification_of(method):
                raise RpcError.invalid_params("Invalid subscription id.")
            del connection.subscriptions[subscription_id]
            return True, None
        entry = SUBSCRIBE_METHODS.get(method) if isinstance(method, str) else None
        if entry is None:
            raise RpcError.method_not_found()
        if len(connection.subscriptions) >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
            raise RpcError.invalid_params("Internal error: too many subscriptions")
        build, required, at_most = entry
        subscription = build(context, Params(raw_params, required=required, at_most=at_most))
        subscription_id = next(self._ids)
        connection.subscriptions[subscription_id] = subscription
        logger.bind(
            action="localnet.pubsub_subscribed",
            endpoint=self._index,
            method=method,
            subscription=subscription_id,
        ).debug("pubsub subscription")
        return subscription_id, subscription

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            context = self._context()
            for connection in list(self._connections):
                for subscription_id, subscription in list(connection.subscriptions.items()):
                    await self._send_due(connection, subscription_id, subscription, context)

    async def _send_due(
        self,
        connection: _Connection,
        subscription_id: int,
        subscription: Subscription,
        context: RpcContext,
    ) -> None:
        try:
            results = subscription.poll(context)
        except Exception as error:  # noqa: BLE001  (one subscription's bug must not stop the pump)
            logger.bind(action="localnet.pubsub_poll_failed", endpoint=self._index).opt(
                exception=error
            ).error("pubsub subscription failed; dropped")
            connection.subscriptions.pop(subscription_id, None)
            return
        if subscription.finished:
            connection.subscriptions.pop(subscription_id, None)
        for result in results:
            if context.drop_notifications and self._dice.random() < context.drop_notifications:
                logger.bind(
                    action="localnet.pubsub_dropped",
                    endpoint=self._index,
                    method=subscription.kind,
                    subscription=subscription_id,
                ).debug("notification dropped by fault")
                continue
            note = {
                "jsonrpc": "2.0",
                "method": subscription.kind,
                "params": {"result": result, "subscription": subscription_id},
            }
            if connection.socket.closed:
                return
            with contextlib.suppress(ConnectionError):
                await connection.socket.send_str(json.dumps(note, separators=(",", ":")))


def _notification_of(unsubscribe: str) -> str:
    return unsubscribe.replace("Unsubscribe", "Notification")
