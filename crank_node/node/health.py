"""The node's HTTP surfaces: two listeners, each on a thread and event loop of its own.

The operator listener (``http_addr``, loopback by default), for the operator
and their monitoring:

* ``GET /health``: healthy or degraded (200), unhealthy (503), per component;
* ``GET /status``: :meth:`Node.status` as JSON (``crank-node status`` prints it);
* ``GET /metrics``: Prometheus text from the node's own registry (crank_node/node/metrics.py),
  and the listeners' own counters (refused connections, timeouts, 429s...);
* ``GET /orders/{id}/journey``: one order's journey from the database
  (:func:`storage.journeys.order_journey`): fills, settlements, claims, attempts,
  trace ids and links, and the state now; 404 for an unknown order.

On an address other than loopback it needs ``operator_allow_remote`` and a
bearer token (``operator_token_file``), checked on every request.

The public intake listener (``intake_addr``), for makers: order intake
(``/orders``, ``/markets/{id}/book``, :mod:`crank_node.node.intake_http`), served by the
node's ``intake`` (an :class:`~crank_node.node.intake.OrderIntake`) once it is set, 503
before and after; with timeouts, a body bound, a connection cap and rate limits
(:mod:`crank_node.node.http_server`). Saturating it leaves the operator listener answering:
separate connections, loop and executor.

Each probe runs in its listener's executor, so a slow database or actor never
stalls the server.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from crank_node.node.http_server import (
    HttpLimits,
    Listener,
    ListenerEvents,
    OperatorTokenError,
    bearer_middleware,
    descriptor_budget,
    is_loopback,
    read_token_file,
)
from crank_node.node.intake import OrderIntake
from crank_node.node.intake_http import IntakeLimits, intake_app
from crank_node.node.node import Node
from storage.errors import StorageError
from storage.journeys import order_journey

if TYPE_CHECKING:
    from crank_node.node.settings import CrankSettings

__all__ = ["OPERATOR_MAX_CONNECTIONS", "HealthServer"]

STATUS_CODES = {"healthy": 200, "degraded": 200, "unhealthy": 503}
OPERATOR_MAX_CONNECTIONS = 64  # health checks, a scraper, an operator: a handful


class HealthServer:
    """Serves a :class:`Node`'s operator endpoints at ``http://host:port`` and its order
    intake at ``http://intake_host:intake_port``."""

    def __init__(
        self,
        node: Node,
        host: str,
        port: int,
        *,
        intake_host: str = "127.0.0.1",
        intake_port: int = 0,
        limits: HttpLimits | None = None,
        intake_limits: IntakeLimits | None = None,
        operator_token: str | None = None,
    ) -> None:
        if not is_loopback(host) and operator_token is None:
            raise OperatorTokenError(
                f"the operator listener on {host} (not loopback) needs a bearer token: set "
                f"operator_allow_remote and operator_token_file"
            )
        self.node = node
        self.limits = limits or HttpLimits()
        self.intake_limits = intake_limits or IntakeLimits(
            max_body_bytes=self.limits.max_body_bytes, body_timeout_s=self.limits.body_timeout_s
        )
        operator_limits = replace(self.limits, max_connections=OPERATOR_MAX_CONNECTIONS)
        middlewares: list[Any] = (
            [] if operator_token is None else [bearer_middleware(operator_token)]
        )
        operator = web.Application(middlewares=middlewares)
        operator.router.add_get("/health", self._health)
        operator.router.add_get("/status", self._status)
        operator.router.add_get("/metrics", self._metrics)
        operator.router.add_get("/orders/{order_id}/journey", self._journey)
        self.operator = Listener("operator", operator, host, port, operator_limits)
        events = ListenerEvents("intake", self.limits.log_interval_s)
        app = intake_app(self._intake, self.intake_limits, events)
        self.intake = Listener("intake", app, intake_host, intake_port, self.limits, events=events)

    @classmethod
    def from_settings(cls, node: Node, settings: CrankSettings) -> HealthServer:
        """The listeners ``settings`` describe (reads the operator token file, if any;
        raises OperatorTokenError naming it if it cannot be used)."""
        host, port = settings.http_host_port()
        intake_host, intake_port = settings.intake_host_port()
        token = None
        if settings.operator_token_file is not None:
            token = read_token_file(settings.operator_token_file)
        limits = settings.http_limits()
        limits = replace(limits, max_connections=descriptor_budget(limits.max_connections))
        return cls(
            node,
            host,
            port,
            intake_host=intake_host,
            intake_port=intake_port,
            limits=limits,
            intake_limits=settings.intake_limits(),
            operator_token=token,
        )

    @property
    def host(self) -> str:
        return self.operator.host

    @property
    def port(self) -> int:
        """The operator listener's port (the one the system chose for port 0)."""
        return self.operator.port

    @property
    def intake_host(self) -> str:
        return self.intake.host

    @property
    def intake_port(self) -> int:
        return self.intake.port

    def start(self, timeout_s: float = 10.0) -> None:
        self.operator.start(timeout_s)
        try:
            self.intake.start(timeout_s)
        except OSError:
            self.operator.stop(timeout_s)
            raise

    def stop(self, timeout_s: float = 10.0) -> None:
        self.intake.stop(timeout_s)
        self.operator.stop(timeout_s)

    def stats(self) -> dict[str, dict[str, int]]:
        """Each listener's counters (refused connections, timeouts, 429s...)."""
        return {
            "operator": self.operator.events.snapshot(),
            "intake": self.intake.events.snapshot(),
        }

    def wait_for_count(self, event: str, at_least: int, timeout_s: float) -> bool:
        """Block until intake's counter ``event`` reaches ``at_least`` (False after
        ``timeout_s``): for tests, which must not sleep."""
        return self.intake.events.wait_for(event, at_least, timeout_s)

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

    async def _journey(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        engine = self.node.engine
        if engine is None:
            return web.json_response({"error": "the node has no database open"}, status=503)
        if not 32 <= len(order_id) <= 88 or not order_id.isalnum():
            return web.json_response({"error": "order_id: not an order id"}, status=400)
        loop = asyncio.get_running_loop()
        try:
            journey = await loop.run_in_executor(None, order_journey, engine, order_id)
        except StorageError as error:
            return web.json_response({"error": f"database: {error}"}, status=503)
        if journey is None:
            return web.json_response({"error": "order_id: no such order"}, status=404)
        return web.json_response(journey)

    async def _metrics(self, _request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, self.node.metrics.render)
        body += self._listener_metrics()
        # CONTENT_TYPE_LATEST carries the exposition format's version parameter,
        # which aiohttp's content_type argument cannot hold: set the header.
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _listener_metrics(self) -> bytes:
        """The listeners' counters as one Prometheus counter family."""
        name = "crank_http_events"
        lines = [
            f"# HELP {name} HTTP listener events (refused connections, timeouts, 429s...)",
            f"# TYPE {name} counter",
        ]
        for listener, counts in self.stats().items():
            for event, count in sorted(counts.items()):
                lines.append(f'{name}_total{{listener="{listener}",event="{event}"}} {count}')
        return ("\n".join(lines) + "\n").encode()
