"""A TCP relay in the root namespace: the gateway's ports to PostgreSQL and localnet on
loopback (see :mod:`crank_node.chaos.netns`), so the servers keep their configuration.

Per client address it can also:

* **degrade**: hold every chunk it relays for ``latency_ms`` plus or minus
  ``jitter_ms`` (seeded), both ways, in order (the kernel has no ``netem`` here);
* **hang** (a half-open connection): stop relaying on the connections open now,
  without closing them. The kernel still acknowledges what the node sends, so
  TCP keepalive and ``tcp_user_timeout`` see a healthy peer: only a deadline of
  the client's own ends the wait. New connections work. On heal the hung ones
  are closed (the client sees its connection end, as when a proxy gives up).

Its node-side sockets send TCP keepalive probes and bound unacknowledged data
(:data:`KEEPALIVE`), so a client that
vanished without a FIN reaching it (killed while its packets were dropped) is found
dead and its server-side connection closed, as the server's own keepalive would on
a real network. Without them, every node killed during a partition left its
connections open here and its server sessions with them: a 30-minute run used up
PostgreSQL's 100 connections ("sorry, too many clients already").
"""

from __future__ import annotations

import asyncio
import functools
import random
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from loguru import logger

__all__ = ["Forwarder", "Route"]

CHUNK = 65_536
START_TIMEOUT_S = 10.0
# Probe a silent node-side connection after 2 s idle, every 1 s, 3 times, and give up on
# data unacknowledged for 5 s (keepalive does not probe while data waits for its ACK):
# found dead about 5 s after its last packet (the nodes' own timeouts at a 3 s lease TTL
# are about as quick).
KEEPALIVE = (
    (socket.TCP_KEEPIDLE, 2),
    (socket.TCP_KEEPINTVL, 1),
    (socket.TCP_KEEPCNT, 3),
    (socket.TCP_USER_TIMEOUT, 5000),
)


@dataclass(frozen=True)
class Route:
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int


@dataclass
class _Client:
    latency_ms: int = 0
    jitter_ms: int = 0
    hung: bool = False
    hung_writers: list[asyncio.StreamWriter] = field(default_factory=list)
    hang_event: asyncio.Event | None = None


class Forwarder:
    """Relays every :class:`Route` on an event loop of its own thread."""

    def __init__(self, routes: Sequence[Route], seed: int = 0) -> None:
        self.routes = tuple(routes)
        self._rng = random.Random(seed)  # noqa: S311  (jitter, not secrets)
        self._clients: dict[str, _Client] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="chaos-forwarder", daemon=True
        )
        self._servers: list[asyncio.Server] = []

    def start(self) -> Forwarder:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(START_TIMEOUT_S)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(START_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    def degrade(self, client: str, latency_ms: int, jitter_ms: int) -> None:
        self._call(self._set_degrade, client, latency_ms, jitter_ms)

    def hang(self, client: str, *, hung: bool) -> None:
        self._call(self._set_hang, client, hung)

    def _call(self, function: object, *args: object) -> None:
        async def run() -> None:
            function(*args)  # type: ignore[operator]

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(START_TIMEOUT_S)

    # -- on the loop ---------------------------------------------------------------------

    def _client(self, host: str) -> _Client:
        return self._clients.setdefault(host, _Client())

    def _set_degrade(self, host: str, latency_ms: int, jitter_ms: int) -> None:
        client = self._client(host)
        client.latency_ms, client.jitter_ms = latency_ms, jitter_ms

    def _set_hang(self, host: str, hung: bool) -> None:
        client = self._client(host)
        if hung:
            client.hung = True
            client.hang_event = asyncio.Event()
            client.hang_event.set()
            return
        client.hung = False
        client.hang_event = None
        for writer in client.hung_writers:
            writer.close()
        client.hung_writers.clear()

    async def _listen(self) -> None:
        for route in self.routes:
            server = await asyncio.start_server(
                functools.partial(self._relay, route),
                route.listen_host,
                route.listen_port,
                reuse_address=True,
            )
            self._servers.append(server)

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for client in self._clients.values():
            for writer in client.hung_writers:
                writer.close()
        # The relays still running end here, not with the loop ("Task was destroyed but
        # it is pending!" at every chaos run's exit).
        relays = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)

    async def _relay(
        self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host = str(writer.get_extra_info("peername")[0])
        _keep_alive(writer.get_extra_info("socket"))
        try:
            up_reader, up_writer = await asyncio.open_connection(
                route.target_host, route.target_port
            )
        except OSError as error:
            logger.bind(action="chaos.forward_refused", route=route.listen_port).warning(
                f"cannot reach {route.target_host}:{route.target_port}: {error}"
            )
            writer.close()
            return
        hang_mark = self._client(host).hang_event  # hung before we connected: not us
        pumps = [
            asyncio.ensure_future(self._pump(host, hang_mark, reader, up_writer, writer)),
            asyncio.ensure_future(self._pump(host, hang_mark, up_reader, writer, up_writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:  # cancelled at stop too: the sockets are closed, not left to the collector
            for pump in pumps:
                pump.cancel()
            for side in (writer, up_writer):
                side.close()

    async def _pump(
        self,
        host: str,
        hang_mark: asyncio.Event | None,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        own: asyncio.StreamWriter,
    ) -> None:
        client = self._client(host)
        try:
            while True:
                data = await source.read(CHUNK)
                if not data:
                    return
                if client.hung and client.hang_event is not hang_mark:
                    client.hung_writers.append(own)  # hold it open, relay nothing more
                    await asyncio.Event().wait()  # until cancelled at heal or stop
                if client.latency_ms or client.jitter_ms:
                    jitter = self._rng.uniform(-client.jitter_ms, client.jitter_ms)
                    await asyncio.sleep(max(0.0, client.latency_ms + jitter) / 1000)
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            return


def _keep_alive(sock: socket.socket | None) -> None:
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in KEEPALIVE:
        sock.setsockopt(socket.IPPROTO_TCP, option, value)
