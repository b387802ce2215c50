"""A WebSocket PubSub server that says what a test scripts, for clients of PubSub: a
feed that lies, refuses, sends garbage or goes silent, which a real endpoint never
does on demand. It is a real aiohttp WebSocket server on a free port, on a thread
of its own.

Each connection gets ``answer(request)`` for its first request (the subscribe),
then the text frames of ``script`` in order; ``next_frames`` sends more to every
open connection; ``close_all`` ends them (the client sees the server close).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["ScriptedPubSub", "slot_note", "subscribed"]


def subscribed(request: dict[str, Any]) -> dict[str, Any]:
    """The answer a Solana node gives a subscribe: the subscription's id."""
    return {"jsonrpc": "2.0", "result": 7, "id": request.get("id")}


def slot_note(slot: Any) -> str:
    """A slotNotification as Agave sends it (``slot`` as given, even if nonsense)."""
    result = {"parent": slot, "root": slot, "slot": slot}
    params = {"result": result, "subscription": 7}
    return json.dumps({"jsonrpc": "2.0", "method": "slotNotification", "params": params})


class ScriptedPubSub:
    def __init__(
        self,
        script: Iterable[str] = (),
        answer: Callable[[dict[str, Any]], dict[str, Any]] = subscribed,
    ) -> None:
        self._script = list(script)
        self._answer = answer
        self._sockets: set[web.WebSocketResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="scripted-pubsub")
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def __enter__(self) -> ScriptedPubSub:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.url = f"ws://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def next_frames(self, frames: Iterable[str]) -> None:
        """Send ``frames`` to every open connection (returns once they are written)."""
        asyncio.run_coroutine_threadsafe(self._send(list(frames)), self._loop).result(10)

    def close_all(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(10)

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_get("/", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        await self._close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.connections += 1
        first = True
        async for message in socket:
            if message.type is not WSMsgType.TEXT:
                continue
            asked = json.loads(message.data)
            self.requests.append(asked)
            if first:
                first = False
                await socket.send_str(json.dumps(self._answer(asked)))
                self._sockets.add(socket)
                for frame in self._script:
                    await socket.send_str(frame)
        self._sockets.discard(socket)
        return socket

    async def _send(self, frames: list[str]) -> None:
        for socket in list(self._sockets):
            for frame in frames:
                await socket.send_str(frame)

    async def _close_all(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        self._sockets.clear()
