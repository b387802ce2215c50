"""One JSON-RPC endpoint over the shared ledger, with its own faults.

Requests pass through the endpoint's faults first (down, latency, hang,
errors), then reach the dispatcher with the endpoint's view of the chain
(lag, dropped or held sends, pruned history). An endpoint with ``backends``
is a load balancer: each request then also passes through the faults of the
one backend picked for it, and sees that backend's view. The admin routes are
mounted on the same listener and never see the faults, so a faulty endpoint can still be healed.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct

from aiohttp import web
from loguru import logger

from localnet.errors import LocalnetStartFailed
from localnet.faults import RANDOM, FaultError, Faults, plan_request
from localnet.ledger import Ledger
from localnet.ports import bind_port
from localnet.pubsub import PubSub
from localnet.rpc_context import RpcContext
from localnet.rpc_dispatch import RpcDispatcher, error_for_each, error_response
from localnet.rpc_errors import RpcError

__all__ = ["Endpoint"]

# Transactions are at most 1232 bytes; batches of them stay far below this.
MAX_BODY_BYTES = 8 * 1024 * 1024
SHUTDOWN_TIMEOUT_S = 2.0
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class Endpoint:
    """A listener on one port; ``index`` is its position among the localnet's endpoints."""

    def __init__(
        self, index: int, host: str, ledger: Ledger, dispatcher: RpcDispatcher, rng: random.Random
    ) -> None:
        self.index = index
        self.host = host
        self.port = 0
        self._ledger = ledger
        self._dispatcher = dispatcher
        self._rng = rng
        self._faults = Faults()
        self._next_backend = 0
        self._release_hangs = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self.pubsub = PubSub(index, self.client_context)
        self.pubsub_port: int | None = None
        self._pubsub_runner: web.AppRunner | None = None
        self._pubsub_site: web.SockSite | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pubsub_url(self) -> str | None:
        """The WebSocket PubSub URL (RPC port + the configured offset), if served."""
        if self.pubsub_port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.pubsub_port}"

    @property
    def faults(self) -> Faults:
        return self._faults

    async def start(
        self, sock: socket.socket, app: web.Application, pubsub_sock: socket.socket | None = None
    ) -> None:
        """Serve ``app`` (RPC and admin routes) on the already-bound ``sock``, and PubSub
        on ``pubsub_sock`` (also on ``sock``: a WebSocket upgrade of ``GET /``)."""
        self.port = sock.getsockname()[1]
        app.router.add_post("/", self._rpc)
        app.router.add_get("/", self._websocket)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self._runner.setup()
        self.pubsub.start()
        self._ledger.add_slot_listener(self.pubsub.slot_produced)
        if pubsub_sock is not None:
            self.pubsub_port = pubsub_sock.getsockname()[1]
            pubsub_app = web.Application()
            pubsub_app.router.add_get("/", self._websocket)
            self._pubsub_runner = web.AppRunner(
                pubsub_app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
            )
            await self._pubsub_runner.setup()
            self._pubsub_site = await _listen(self._pubsub_runner, pubsub_sock)
        await self._listen(sock)

    async def stop(self) -> None:
        self._release_hangs.set()
        self._ledger.remove_slot_listener(self.pubsub.slot_produced)
        await self.pubsub.stop()
        for runner in (self._runner, self._pubsub_runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._pubsub_runner = None
        self._site = self._pubsub_site = None

    async def apply_faults(self, faults: Faults) -> None:
        """Replace this endpoint's faults; going down closes the listener, coming up reopens it.

        Raises :class:`LocalnetStartFailed` (faults unchanged) if the port was taken meanwhile.
        """
        if not faults.down and self._site is None and self._runner is not None:
            try:
                sock = bind_port(self.host, self.port)
            except OSError as error:
                raise LocalnetStartFailed(
                    f"endpoint {self.index} cannot listen on port {self.port} again: {error}"
                ) from error
            await self._listen(sock)
            await self._reopen_pubsub()
        elif faults.down and self._site is not None:
            await self._site.stop()
            self._site = None
            if self._pubsub_site is not None:
                await self._pubsub_site.stop()
                self._pubsub_site = None
            await self.pubsub.close_connections()
        self._faults = faults
        self._next_backend = 0
        if not faults.hang and not any(backend.hang for backend in faults.backends):
            self._release_hangs.set()
            self._release_hangs = asyncio.Event()
        logger.bind(action="localnet.faults_set", endpoint=self.index, **faults.to_json()).info(
            "endpoint faults set"
        )

    def client_context(self, view: Faults | None = None) -> RpcContext:
        """What a request sees: this endpoint's view, or the backend's (``view``) serving it."""
        faults = self._faults if view is None else view
        tip = self._ledger.tip(faults.lag_slots)
        return RpcContext(
            self._ledger,
            tip,
            faults.lag_slots,
            faults.drop_sends,
            faults.late_landing_blocks,
            faults.prune_history_slots,
            self._faults.drop_notifications,
        )

    async def _listen(self, sock: socket.socket) -> None:
        assert self._runner is not None
        self._site = await _listen(self._runner, sock)

    async def _reopen_pubsub(self) -> None:
        if self._pubsub_runner is None or self.pubsub_port is None:
            return
        try:
            sock = bind_port(self.host, self.pubsub_port)
        except OSError as error:
            raise LocalnetStartFailed(
                f"endpoint {self.index} cannot serve PubSub on port {self.pubsub_port} "
                f"again: {error}"
            ) from error
        self._pubsub_site = await _listen(self._pubsub_runner, sock)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self._faults.down:
            return _reset_connection(request)
        return await self.pubsub.handle(request)

    async def _rpc(self, request: web.Request) -> web.StreamResponse:
        blocked, view = await self._route(request)
        if blocked is not None:
            return blocked
        body = await request.read()
        # This endpoint's limit, then (behind a balancer) the backend's that serves it.
        refused = _batch_refused(body, self._faults)
        if refused is None and view is not self._faults:
            refused = _batch_refused(body, view)
        if refused is not None:
            return refused
        answer = self._dispatcher.handle(body, lambda: self.client_context(view))
        return web.Response(text=answer or "", content_type="application/json")

    async def _health(self, request: web.Request) -> web.StreamResponse:
        blocked, view = await self._route(request)
        if blocked is not None:
            return blocked
        behind = view.lag_slots > self._ledger.config.health_check_slot_distance
        return web.Response(text="behind" if behind else "ok")

    async def _route(self, request: web.Request) -> tuple[web.StreamResponse | None, Faults]:
        """This endpoint's faults, then the picked backend's: the response that ends the
        request (or ``None``), and the faults whose view of the chain answers it."""
        front = self._faults
        blocked = await self._apply_fault_plan(request, front)
        if blocked is not None or not front.backends:
            return blocked, front
        index = self._pick_backend(front)
        backend = front.backends[index]
        logger.bind(action="localnet.backend_picked", endpoint=self.index, backend=index).trace(
            "request routed to a backend"
        )
        if backend.down:
            return web.Response(status=502, text="localnet fault: backend down"), backend
        return await self._apply_fault_plan(request, backend), backend

    def _pick_backend(self, front: Faults) -> int:
        if front.backend_choice == RANDOM:
            return self._rng.randrange(len(front.backends))
        index = self._next_backend % len(front.backends)
        self._next_backend += 1
        return index

    async def _apply_fault_plan(
        self, request: web.Request, faults: Faults
    ) -> web.StreamResponse | None:
        """Delay, hang or fail ``request`` as ``faults`` say; ``None`` lets it through."""
        if faults.down:
            return _reset_connection(request)
        plan = plan_request(faults, self._rng)
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)
        if plan.hang:
            logger.bind(action="localnet.request_hung", endpoint=self.index).debug("request hung")
            await self._release_hangs.wait()
            return _reset_connection(request)
        if plan.error is not None:
            return await self._fail(request, plan.error, faults.lag_slots)
        return None

    async def _fail(
        self, request: web.Request, error: FaultError, lag_slots: int
    ) -> web.StreamResponse:
        if error is FaultError.CONNECTION_RESET:
            return _reset_connection(request)
        status = error.http_status
        if status is not None:
            headers = {"Retry-After": "1"} if status == 429 else None
            return web.Response(
                status=status, text=f"localnet fault: HTTP {status}", headers=headers
            )
        slots_behind = lag_slots or self._ledger.config.health_check_slot_distance + 1
        body = error_for_each(await request.read(), RpcError.node_behind(slots_behind))
        return web.Response(text=body, content_type="application/json")


def _batch_refused(body: bytes, faults: Faults) -> web.StreamResponse | None:
    """The refusal of a batch larger than ``faults.max_batch`` (None: answer it)."""
    if not faults.max_batch or not body.lstrip().startswith(b"["):
        return None
    try:
        calls = len(json.loads(body))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None  # the dispatcher answers what does not parse
    if calls <= faults.max_batch:
        return None
    detail = f"batch of {calls} calls exceeds this endpoint's limit of {faults.max_batch}"
    if faults.batch_refusal == "jsonrpc_error":
        error = RpcError(-32600, detail)
        return web.Response(text=error_response(error, None), content_type="application/json")
    return web.Response(status=int(faults.batch_refusal[5:]), text=detail)


async def _listen(runner: web.AppRunner, sock: socket.socket) -> web.SockSite:
    site = web.SockSite(runner, sock)
    await site.start()
    return site


def _reset_connection(request: web.Request) -> web.StreamResponse:
    """Abort the TCP connection with a RST; the returned response is never sent."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()
    return web.Response(status=500)
