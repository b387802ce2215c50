"""A localnet: N endpoints over one ledger, served by an event loop on its own thread.

Use it from any code, in-process::

    with LocalnetServer(LocalnetConfig(port=0, endpoints=3, slot_ms=0)) as localnet:
        client = AsyncClient(localnet.urls[0])
        localnet.advance_slots(2)
        localnet.set_faults(1, Faults(down=True))

``start()`` returns once every endpoint listens; ``stop()`` closes them all and
joins the thread. Slots advance on a timer (``slot_ms``), or only through
:meth:`LocalnetServer.advance_slots` in manual mode (``slot_ms=0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web
from loguru import logger

from localnet.admin import AdminRoutes
from localnet.config import LocalnetConfig
from localnet.endpoint import MAX_BODY_BYTES, Endpoint
from localnet.errors import EndpointNotFound, LocalnetNotRunning, LocalnetStartFailed
from localnet.faults import Faults
from localnet.fixtures import Fixtures
from localnet.ledger import Ledger
from localnet.ports import bind_offsets
from localnet.rpc_dispatch import RpcDispatcher
from localnet.slot_timer import run_slot_timer

__all__ = ["LocalnetServer"]

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 10.0


class LocalnetServer:
    """The localnet's endpoints, slot timer, ledger and fixtures."""

    def __init__(
        self, config: LocalnetConfig | None = None, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or LocalnetConfig()
        self.ledger = Ledger(self.config, wall_clock)
        self.fixtures = Fixtures(self.ledger)
        self._endpoints: list[Endpoint] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._stop_requested: asyncio.Event | None = None

    # --- lifecycle --------------------------------------------------------

    def start(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> LocalnetServer:
        """Open every endpoint and start the slot timer; returns once they listen."""
        if self._thread is not None:
            raise LocalnetStartFailed("this localnet was already started")
        self._thread = threading.Thread(target=self._run, name="localnet", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise LocalnetStartFailed(f"endpoints did not start within {timeout_s} s")
        if self._start_error is not None:
            self._thread.join(timeout_s)
            self.ledger.close()  # a failed localnet cannot be started again
            error = self._start_error
            if isinstance(error, LocalnetStartFailed):
                raise error
            raise LocalnetStartFailed(f"endpoints failed to start: {error!r}") from error
        logger.bind(action="localnet.started", urls=self.urls, slot_ms=self.config.slot_ms).info(
            "localnet started"
        )
        return self

    def stop(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Close every endpoint, stop the timer and join the thread; safe to call twice."""
        thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
        if thread is None or not thread.is_alive():
            self.ledger.close()
            return
        if loop is not None and stop_requested is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed on its own meanwhile
                loop.call_soon_threadsafe(stop_requested.set)
        thread.join(timeout_s)
        if thread.is_alive():
            logger.bind(action="localnet.stop_timeout", timeout_s=timeout_s).error(
                "localnet thread did not stop in time; abandoned"
            )
            return
        self.ledger.close()
        logger.bind(action="localnet.stopped").info("localnet stopped")

    def __enter__(self) -> LocalnetServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._ready.is_set()

    # --- what clients use -------------------------------------------------

    @property
    def urls(self) -> tuple[str, ...]:
        """One JSON-RPC URL per endpoint (ports step by 2 when PubSub takes port+1)."""
        return tuple(endpoint.url for endpoint in self._endpoints)

    @property
    def pubsub_urls(self) -> tuple[str | None, ...]:
        """Each endpoint's WebSocket PubSub URL (its port + ``pubsub_port_offset``)."""
        return tuple(endpoint.pubsub_url for endpoint in self._endpoints)

    @property
    def url(self) -> str:
        """The first endpoint's URL."""
        if not self._endpoints:
            raise LocalnetNotRunning()
        return self._endpoints[0].url

    def advance_slots(self, count: int = 1) -> int:
        """Produce ``count`` slots now (any mode); returns the new processed slot."""
        return self.ledger.advance_slots(count)

    def faults(self, endpoint: int) -> Faults:
        return self._endpoint(endpoint).faults

    def set_faults(
        self, endpoint: int, faults: Faults, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """Replace the faults of endpoint ``endpoint`` (0-based); applied before returning."""
        target = self._endpoint(endpoint)
        self._call_in_loop(target.apply_faults(faults), timeout_s)

    def clear_faults(
        self, endpoint: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """Heal one endpoint, or every endpoint when ``endpoint`` is None."""
        indexes = range(len(self._endpoints)) if endpoint is None else [endpoint]
        for index in indexes:
            self.set_faults(index, Faults(), timeout_s)

    # --- the loop thread --------------------------------------------------

    def _endpoint(self, index: int) -> Endpoint:
        if not self.running:
            raise LocalnetNotRunning()
        if not 0 <= index < len(self._endpoints):
            raise EndpointNotFound(f"no endpoint {index}: this localnet has {len(self._endpoints)}")
        return self._endpoints[index]

    def _call_in_loop(self, work: Coroutine[Any, Any, T], timeout_s: float) -> T:
        loop = self._loop
        if loop is None:
            work.close()
            raise LocalnetNotRunning()
        return asyncio.run_coroutine_threadsafe(work, loop).result(timeout_s)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self.ledger.adopt_current_thread()  # the RPC hot path calls LiteSVM directly
        try:
            loop.run_until_complete(self._serve())
        finally:
            self.ledger.release_current_thread()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            self._ready.set()

    async def _serve(self) -> None:
        self._stop_requested = asyncio.Event()
        timer: asyncio.Task[None] | None = None
        try:
            await self._open_endpoints()
            if not self.config.manual_slots:
                timer = asyncio.create_task(run_slot_timer(self.ledger, self.config.slot_ms))
        except BaseException as error:  # noqa: BLE001  (handed to start(), which raises it in the caller)
            self._start_error = error
        self._ready.set()
        if self._start_error is None:
            await self._stop_requested.wait()
        await self._close(timer)

    async def _open_endpoints(self) -> None:
        layout = self.config.port_offsets
        offsets = [rpc for rpc, _ in layout] + [ws for _, ws in layout if ws is not None]
        bound = bind_offsets(self.config.host, self.config.port, offsets)
        sockets, pubsub_sockets = bound[: len(layout)], bound[len(layout) :]
        dispatcher = RpcDispatcher()
        for index in range(self.config.endpoints):
            # Seeded so a fault run can be replayed; the dice decide faults, not secrets.
            rng = random.Random(f"{self.config.fault_seed}:{index}")  # noqa: S311
            self._endpoints.append(Endpoint(index, self.config.host, self.ledger, dispatcher, rng))
        started = 0
        try:
            for endpoint, sock in zip(self._endpoints, sockets, strict=True):
                app = web.Application(client_max_size=MAX_BODY_BYTES)
                AdminRoutes(endpoint.index, self._endpoints, self.ledger).add_to(app)
                pubsub_sock = pubsub_sockets[started] if pubsub_sockets else None
                await endpoint.start(sock, app, pubsub_sock)
                started += 1
            for endpoint, faults in zip(self._endpoints, self.config.endpoint_faults, strict=False):
                await endpoint.apply_faults(faults)
        except BaseException:
            # Sockets already serving belong to their endpoint now; _close() stops those.
            for sock in sockets[started:] + pubsub_sockets[started:]:
                sock.close()
            raise

    async def _close(self, timer: asyncio.Task[None] | None) -> None:
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        for endpoint in reversed(self._endpoints):
            await endpoint.stop()
