"""The node's HTTP surface on loopback.

* ``GET /health``: healthy or degraded (200), unhealthy (503), per component;
* ``GET /status``: :meth:`Node.status` as JSON (``crank-node status`` prints it);
* ``GET /metrics``: Prometheus text from the node's own registry (cli/metrics.py);
* order intake (``/orders``, ``/markets/{id}/book``): :mod:`cli.intake_http`, served
  by the node's ``intake`` (an :class:`~cli.intake.OrderIntake`) once it is set, 503 before
  and after.

aiohttp on an event loop of its own thread; each probe runs in the loop's
executor, so a slow database or actor never stalls the server.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST

from cli.intake import OrderIntake
from cli.intake_http import add_intake_routes
from cli.node import Node

__all__ = ["HealthServer"]

STATUS_CODES = {"healthy": 200, "degraded": 200, "unhealthy": 503}


class HealthServer:
    """Serves a :class:`Node`'s health at ``http://host:port/health``."""

    def __init__(self, node: Node, host: str, port: int) -> None:
        self.node = node
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="node-http", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise OSError(f"cannot serve http on {self.host}:{self.port}: {self._error!r}")

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stopped.set)
            self._thread.join(timeout_s)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # noqa: BLE001  (reported to start())
            self._error = error
            self._ready.set()
        finally:
            # Joins the executor's threads (the handlers' blocking work) before closing.
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        add_intake_routes(app, self._intake)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # the port the system chose (tests ask for any free one)
            self.port = int(runner.addresses[0][1])
        logger.bind(action="node.http_started", addr=f"{self.host}:{self.port}").info(
            f"serving health on http://{self.host}:{self.port}/health"
        )
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    def _intake(self) -> OrderIntake | None:
        # Read at each request: the node sets `intake` after start (and closes it
        # in its stop-intake phase), so the routes exist before there is one.
        intake: OrderIntake | None = getattr(self.node, "intake", None)
        return intake

    async def _health(self, _request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        status, components = await loop.run_in_executor(None, self.node.health)
        body: dict[str, Any] = {
            "status": status,
            "node_id": self.node.settings.instance_id,
            "components": components,
        }
        return web.json_response(body, status=STATUS_CODES[status])

    async def _status(self, _request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        return web.json_response(await loop.run_in_executor(None, self.node.status))

    async def _metrics(self, _request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, self.node.metrics.render)
        # CONTENT_TYPE_LATEST carries the exposition format's version parameter,
        # which aiohttp's content_type argument cannot hold: set the header.
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
