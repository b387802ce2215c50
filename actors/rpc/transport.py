"""HTTP for the router: an asyncio event loop on a thread of its own.

The router's actor thread only hands requests over (:meth:`submit` never
blocks) and gets each result back through ``on_done``, called on the loop's
thread. Requests run concurrently, each under its own timeout, so one slow
endpoint never holds up another. :meth:`close` cancels what is still running,
closes the HTTP session and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp
from loguru import logger

from actors.rpc.classify import AttemptResult, HttpReply, TransportFailure
from actors.rpc.redact import mask_url

__all__ = ["AioHttpTransport", "OnDone", "Transport"]

OnDone = Callable[[AttemptResult], None]
_HEADERS = {"Content-Type": "application/json"}
_START_TIMEOUT_S = 10.0
_CLOSE_TIMEOUT_S = 5.0


class Transport(Protocol):
    """Posts JSON-RPC bodies; the router's only way to the network."""

    def start(self) -> None: ...

    def submit(self, url: str, body: bytes, timeout_s: float, on_done: OnDone) -> None:
        """Post ``body`` to ``url``; ``on_done`` gets the result exactly once
        (never, if the transport is closed first). Must not block."""

    def close(self) -> None: ...


class AioHttpTransport:
    """An aiohttp session on an event loop the transport owns."""

    def __init__(self, *, name: str = "rpc-transport", connections_per_host: int = 64) -> None:
        self.name = name
        self._connections_per_host = connections_per_host
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError(f"{self.name} did not start within {_START_TIMEOUT_S}s")
        if self._start_error is not None:
            raise RuntimeError(f"{self.name} failed to start") from self._start_error

    def submit(self, url: str, body: bytes, timeout_s: float, on_done: OnDone) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # closed meanwhile: results are not wanted
            loop.call_soon_threadsafe(self._spawn, url, body, timeout_s, on_done)

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already stopped
            loop.call_soon_threadsafe(loop.stop)
        thread.join(_CLOSE_TIMEOUT_S)
        if thread.is_alive():
            logger.bind(action="rpc.transport_stuck", transport=self.name).error(
                f"{self.name} did not stop within {_CLOSE_TIMEOUT_S}s; abandoned"
            )

    # -- the loop's thread ---------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._open())
            self._loop = loop
        except Exception as error:  # noqa: BLE001  (reported to start(), which raises it)
            self._start_error = error
        self._ready.set()
        try:
            if self._start_error is None:
                loop.run_forever()
        finally:
            loop.run_until_complete(self._shut())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _open(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=self._connections_per_host)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        )

    async def _shut(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _spawn(self, url: str, body: bytes, timeout_s: float, on_done: OnDone) -> None:
        task = asyncio.get_running_loop().create_task(self._post(url, body, timeout_s, on_done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, body: bytes, timeout_s: float, on_done: OnDone) -> None:
        assert self._session is not None
        started = time.perf_counter()
        result: AttemptResult
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session.post(url, data=body, headers=_HEADERS) as response:
                    payload = await response.read()
            result = HttpReply(response.status, payload, time.perf_counter() - started)
        except TimeoutError:
            detail = f"no answer within {timeout_s:.3g}s"
            result = TransportFailure(True, detail, time.perf_counter() - started)
        except (aiohttp.ClientError, OSError) as error:
            detail = f"{type(error).__name__}: {error}".replace(url, mask_url(url))
            result = TransportFailure(False, detail, time.perf_counter() - started)
        try:
            on_done(result)
        except Exception:  # noqa: BLE001  (a bad callback must not kill the loop)
            logger.bind(action="rpc.transport_callback_failed").exception("on_done raised")
