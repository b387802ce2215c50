"""One HTTP listener with limits: an aiohttp app on its own thread and event loop.

What aiohttp (3.14) gives and what this module adds, read from its server source
(``aiohttp/web_protocol.py``, ``web_server.py``, ``web_runner.py``):

* idle: ``RequestHandler(keepalive_timeout=...)`` arms a timer at
  ``connection_made`` and after each response; it closes the connection if no
  request head has arrived by then. That is the idle timeout.
* header: aiohttp has no timeout on reading a request head (a client that sends
  a byte now and then keeps it). :class:`GuardedHandler` subclasses
  ``RequestHandler``: the first byte of a request head starts a deadline, a
  complete head (``_request_count`` grows in ``data_received``) ends it; past it
  the client gets 408 and the connection is closed.
* body: read inside the handler under ``asyncio.timeout`` (:mod:`crank_node.node.intake_http`).
* connections: ``TCPSite`` hands ``loop.create_server`` the runner's ``Server``
  as protocol factory. :class:`CappedSite` hands it a :class:`ConnectionGate`
  instead, which builds a :class:`GuardedHandler` for the runner's ``Server``
  while under the cap and, past it, a protocol that answers 503 and closes at
  once (counted, logged once per interval). The cap stays below the process's
  descriptor limit (:func:`descriptor_budget`), so ``accept()`` never hits EMFILE
  (the cause of asyncio's traceback per failed accept).
* a malformed head (a bad ``Content-Length``...) goes to
  ``RequestHandler.handle_error``, which answers ``text/plain`` and logs a
  traceback at ERROR; :class:`GuardedHandler` answers the JSON error shape and
  logs one DEBUG line per interval instead.

Each listener runs on its own thread, loop and executor, so the operator
listener's /health answers while intake's connections and executor are full.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import resource
import stat
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server
from loguru import logger

from crank_node.node.http_limits import LogLimiter, clip
from supervision.errors import CrankError

__all__ = [
    "DESCRIPTOR_RESERVE",
    "STATUS_CODES",
    "ConnectionGate",
    "GuardedHandler",
    "HttpLimits",
    "Listener",
    "ListenerEvents",
    "OperatorTokenError",
    "bearer_middleware",
    "descriptor_budget",
    "error_body",
    "is_loopback",
    "json_error",
    "read_token_file",
]

# Descriptors kept for everything but the HTTP listeners' connections: database
# connections, RPC sockets, log files, the localnet in a demo, the operator listener.
DESCRIPTOR_RESERVE = 256
LOG_INTERVAL_S = 10.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class HttpLimits:
    """A listener's limits. A signed order is under 2 KB of JSON (two base58 keys,
    a signature, a few integers); ``max_body_bytes`` of 16 KiB leaves room for
    pretty-printed JSON and new fields and is still too small to cost memory
    (16 KiB x the connection cap is 16 MiB at most)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    max_body_bytes: int = 16 * 1024
    max_connections: int = 1024
    log_interval_s: float = LOG_INTERVAL_S


# The machine-readable ``code`` of an error answered without a more precise one
# (docs/API.md, "Errors"): stable, snake_case, one per kind of refusal.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "body_too_large",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal",
    503: "unavailable",
}


def error_body(
    status: int, field: str | None, reason: str, kind: str, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {field, reason, type, code}}``: ``code`` is stable for machines,
    ``type`` names the error's class, ``reason`` is for people."""
    code = code or STATUS_CODES.get(status, "bad_request" if status < 500 else "internal")
    return {"error": {"field": field, "reason": reason, "type": kind, "code": code}}


def json_error(
    status: int,
    field: str | None,
    reason: str,
    kind: str,
    headers: Mapping[str, str] | None = None,
    *,
    code: str | None = None,
) -> web.Response:
    """The error shape every answer of ours uses (:func:`error_body`)."""
    body = error_body(status, field, reason, kind, code)
    return web.json_response(body, status=status, headers=headers)


def _raw_answer(status: int, phrase: str, field: str | None, reason: str, kind: str) -> bytes:
    """A whole HTTP/1.1 answer with the JSON error, written straight to a transport."""
    body = json.dumps(error_body(status, field, reason, kind)).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    )
    if status == 503:
        head += "Retry-After: 1\r\n"
    return head.encode("ascii") + b"\r\n" + body


class ListenerEvents:
    """A listener's counters (thread-safe), read by /metrics and waited on by tests;
    and its rate-limited log: one line per kind of event per interval."""

    def __init__(self, name: str, log_interval_s: float) -> None:
        self.name = name
        self._counts: Counter[str] = Counter()
        self._condition = threading.Condition()
        self._log = LogLimiter(log_interval_s)

    def count(self, event: str, amount: int = 1) -> None:
        with self._condition:
            self._counts[event] += amount
            self._condition.notify_all()

    def snapshot(self) -> dict[str, int]:
        with self._condition:
            return dict(self._counts)

    def wait_for(self, event: str, at_least: int, timeout_s: float) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self._counts[event] >= at_least, timeout_s)

    def log(self, level: str, action: str, message: str, key: str | None = None) -> None:
        """Log ``message`` unless a line with the same key went out within the interval;
        say how many were held back since the last one."""
        held = self._log.allow(f"{action}:{key or ''}", time.monotonic())
        if held is None:
            return
        more = f" (and {held} more like it in the last interval)" if held else ""
        logger.bind(action=action, listener=self.name, held_back=held).log(level, message + more)


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler with a request-head deadline and JSON errors."""

    def __init__(self, gate: ConnectionGate, manager: Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._head_deadline: asyncio.TimerHandle | None = None
        self._released = False

    def data_received(self, data: bytes) -> None:
        heads_before = self._request_count
        super().data_received(data)
        if self._request_count != heads_before:
            self._cancel_head_deadline()  # a whole head arrived
        elif data and self._head_deadline is None and not self._request_in_progress:
            # The first bytes of a head (between requests, not a body being read).
            self._head_deadline = self._loop.call_later(
                self._gate.limits.header_timeout_s, self._head_too_slow
            )

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_deadline()
        if not self._released:
            self._released = True
            self._gate.released()
        super().connection_lost(exc)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        events = self._gate.events
        events.log(
            "INFO",
            "http.header_timeout",
            f"{events.name}: closed a connection whose request head took over "
            f"{self._gate.limits.header_timeout_s:g}s",
        )
        events.count("header_timeouts")
        if self.transport is not None:
            reason = f"the request head took over {self._gate.limits.header_timeout_s:g}s"
            self.transport.write(_raw_answer(408, "Request Timeout", None, reason, "Timeout"))
        self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp could not parse or serve: the JSON error shape, never
        text/plain or a traceback. A malformed request is the client's (DEBUG, one
        line per interval); only a 500 is ours (ERROR, with the exception)."""
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already sent; cannot send the error")
        events = self._gate.events
        if status >= 500:
            events.count("server_errors")
            logger.bind(action="http.server_error", listener=events.name).opt(exception=exc).error(
                f"{events.name}: failed on a request: {exc!r}"
            )
            response = json_error(
                status, None, "the node failed to handle the request", "InternalError"
            )
        else:
            text = str(getattr(exc, "message", None) or message or exc or "bad request")
            first = text.strip().splitlines()[0] if text.strip() else "bad request"
            field = "Content-Length" if "content-length" in text.lower() else "request"
            events.count("bad_requests")
            events.log(
                "DEBUG", "http.bad_request", f"{events.name}: bad request: {clip(first)}", field
            )
            response = json_error(status, field, clip(first), "BadRequest")
        response.force_close()
        return response


class ConnectionGate:
    """The listener's protocol factory: a :class:`GuardedHandler` while fewer than
    ``limits.max_connections`` are open, else a protocol that answers 503 and closes."""

    def __init__(
        self, server: Server, limits: HttpLimits, events: ListenerEvents, handler_kwargs: Any
    ) -> None:
        self.server = server
        self.limits = limits
        self.events = events
        self._kwargs = handler_kwargs
        self.open = 0  # only touched on the listener's loop

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.limits.max_connections:
            return _Refused(self)
        # Counted here, not in connection_made: one loop turn may accept many sockets
        # before any connection_made runs.
        self.open += 1
        return GuardedHandler(self, self.server, **self._kwargs)

    def released(self) -> None:
        self.open -= 1

    def refused(self) -> None:
        self.events.log(
            "WARNING",
            "http.connection_refused",
            f"{self.events.name}: refusing connections: {self.open} open, the cap is "
            f"{self.limits.max_connections}",
        )
        self.events.count("connections_refused")


class _Refused(asyncio.Protocol):
    """A connection past the cap: a 503 answer at once, then closed."""

    def __init__(self, gate: ConnectionGate) -> None:
        self._gate = gate

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._gate.refused()
        assert isinstance(transport, asyncio.Transport)
        reason = "too many connections; retry later"
        transport.write(_raw_answer(503, "Service Unavailable", None, reason, "Overloaded"))
        transport.close()


class CappedSite(web.TCPSite):
    """TCPSite whose protocol factory is a :class:`ConnectionGate`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, gate: ConnectionGate) -> None:
        super().__init__(runner, host, port, backlog=1024)
        self._gate = gate

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._gate, self._host, self._port, backlog=self._backlog
        )
        self._bound_port = int(self._server.sockets[0].getsockname()[1])


class Listener:
    """Serves ``app`` on ``host:port`` with ``limits``, on a thread and loop of its own."""

    def __init__(
        self,
        name: str,
        app: web.Application,
        host: str,
        port: int,
        limits: HttpLimits,
        *,
        events: ListenerEvents | None = None,
    ) -> None:
        self.name = name
        self.app = app
        self.host = host
        self.port = port
        self.limits = limits
        self.events = events or ListenerEvents(name, limits.log_interval_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"http-{name}", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise OSError(f"cannot serve {self.name} on {self.host}:{self.port}: {self._error!r}")

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stopped.set)
            self._thread.join(timeout_s)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._loop_exception)
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

    def _loop_exception(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's own errors (a failed accept, a reset socket): one line per kind per
        interval, without a traceback, instead of one traceback per event."""
        error = context.get("exception")
        kind = type(error).__name__ if error is not None else "error"
        self.events.count("loop_errors")
        self.events.log(
            "WARNING",
            "http.loop_error",
            f"{self.name}: {clip(str(context.get('message', '')), 200)}: {clip(repr(error), 200)}",
            kind,
        )

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        assert runner.server is not None
        handler_kwargs = {
            "loop": asyncio.get_running_loop(),
            "keepalive_timeout": self.limits.idle_timeout_s,
            # An unread body (a 413 answered from its Content-Length) is not drained:
            # the connection closes once the answer is written.
            "lingering_time": 0.0,
            "access_log": None,
            "max_line_size": 8190,
            "max_field_size": 8190,
            "max_headers": 64,
        }
        gate = ConnectionGate(runner.server, self.limits, self.events, handler_kwargs)
        site = CappedSite(runner, self.host, self.port, gate)
        await site.start()
        self.port = site.port
        logger.bind(
            action="node.http_started", listener=self.name, addr=f"{self.host}:{self.port}"
        ).info(f"serving {self.name} on http://{self.host}:{self.port}")
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()


# -- the operator listener's bearer token ------------------------------------------------


class OperatorTokenError(CrankError):
    """The operator listener's token file cannot be used."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def read_token_file(path: Path) -> str:
    """The bearer token in ``path``: a regular file of its owner's, readable by no one
    else (0600 or 0400), 32 to 4096 printable characters. Refuses otherwise, naming
    the file and what to change."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise OperatorTokenError(
            f"operator_token_file {path}: cannot be read ({error.strerror})"
        ) from error
    if not stat.S_ISREG(info.st_mode):
        raise OperatorTokenError(f"operator_token_file {path}: is not a regular file")
    if info.st_mode & 0o077:
        raise OperatorTokenError(
            f"operator_token_file {path}: its permissions {stat.S_IMODE(info.st_mode):04o} let "
            f"others read it; run chmod 600 {path}"
        )
    if info.st_uid != os.geteuid():
        raise OperatorTokenError(f"operator_token_file {path}: is not owned by this user")
    token = path.read_text(encoding="utf-8", errors="replace").strip()
    if not 32 <= len(token) <= 4096 or not token.isprintable() or " " in token:
        raise OperatorTokenError(
            f"operator_token_file {path}: must hold one token of 32 to 4096 printable "
            f"characters without spaces (e.g. from: openssl rand -hex 32)"
        )
    return token


def bearer_middleware(token: str) -> Callable[[web.Request, Handler], Awaitable[Any]]:
    """Every request needs ``Authorization: Bearer <token>`` (compared in constant time)."""
    expected = token.encode("utf-8")

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        presented = value.strip().encode("utf-8", errors="replace")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented, expected):
            return json_error(
                401,
                "Authorization",
                "a valid bearer token is required",
                "Unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="crank-node operator"'},
            )
        return await handler(request)

    return check


# -- descriptors ------------------------------------------------------------------------


def descriptor_budget(wanted: int, reserve: int = DESCRIPTOR_RESERVE) -> int:
    """How many connections the listeners may hold: ``wanted``, lowered to the
    process's descriptor limit minus ``reserve`` (the soft limit is first raised to
    the hard one, as far as it goes). Logs a warning when it lowers the cap."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # keep the soft limit we have
    budget = max(16, min(wanted, soft - reserve))
    if budget < wanted:
        logger.bind(action="node.http_descriptor_cap", limit=soft, cap=budget).warning(
            f"the descriptor limit is {soft}: intake accepts at most {budget} connections, not "
            f"{wanted} (raise LimitNOFILE or ulimit -n)"
        )
    return budget
