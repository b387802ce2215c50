"""Orders stored or cancelled by any node, as PostgreSQL notices them: ``LISTEN`` on a
thread.

OrderMonitor reads a market's orders early when an order of it is stored or
cancelled (:class:`actors.order_monitor.OrdersStored`). Its own node's intake tells it
directly; this feed tells it of the orders every other node (or process) stores or
cancels, from the notices those writes send (storage/order_notices.py). A hint,
never evidence: it only makes a read come sooner, and a notice lost changes nothing
but when the change is read.

One connection of its own (:func:`storage.listen_connection`: the engine's
settings, out of its pool), on a thread of its own that waits in
``Connection.notifies`` for at most ``heartbeat_s`` at a time, then checks the
connection with a ``SELECT 1`` (a partitioned server is found by the engine's TCP
timeouts, not waited on forever). A connection that fails is opened again after
``reconnect_first_s``, doubling up to ``reconnect_max_s`` (back to the first once a
connection has worked for a heartbeat). The server ends the session if it hears
nothing from it for ``server_idle_timeout_s`` (a feed whose process is paused must
not keep the server's notice queue from emptying: storage.listen_connection).
Notices of another schema, and payloads that are not notices, are counted and
skipped. ``on_market`` is called on the
feed's thread with each notice's market id, and ``on_listening`` (if given) each time
a session starts listening, the first included: whatever was written while none
listened was told to nobody. Neither may block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger
from sqlalchemy.engine import Engine

import storage

__all__ = ["OrderFeed", "OrderFeedState"]


@dataclass(frozen=True)
class OrderFeedState:
    connected: bool  # listening now
    backend_pid: int | None  # the listening session's server process (pg_stat_activity)
    schema: str | None  # the schema whose notices it takes
    notices: int  # notices of that schema, passed on
    connects: int  # connections made and listening (the first, then one per reconnect)
    skipped: int  # notices of another schema, or payloads that are not notices
    last_error: str | None


class OrderFeed:
    """See the module docstring."""

    def __init__(
        self,
        engine: Engine,
        on_market: Callable[[str], None],
        *,
        on_listening: Callable[[], None] | None = None,
        name: str = "order-feed",
        heartbeat_s: float = 1.0,
        reconnect_first_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        server_idle_timeout_s: float = 60.0,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(f"an order feed needs PostgreSQL, not {engine.dialect.name}")
        for what, value in (
            ("heartbeat_s", heartbeat_s),
            ("reconnect_first_s", reconnect_first_s),
            ("reconnect_max_s", reconnect_max_s),
            ("server_idle_timeout_s", server_idle_timeout_s),
        ):
            if not value > 0:
                raise ValueError(f"{what} must be above 0, got {value!r}")
        self.name = name
        self._engine = engine
        self._on_market = on_market
        self._on_listening = on_listening
        self._heartbeat_s = heartbeat_s
        self._reconnect_first_s = reconnect_first_s
        self._reconnect_max_s = max(reconnect_max_s, reconnect_first_s)
        self._server_idle_timeout_s = max(server_idle_timeout_s, 2 * heartbeat_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connected = False
        self._backend_pid: int | None = None
        self._schema: str | None = None
        self._notices = 0
        self._connects = 0
        self._skipped = 0
        self._last_error: str | None = None
        self._lasted = False  # the current connection has answered a heartbeat

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening, without waiting: the thread ends within a heartbeat (or, with
        the server silent, once the engine's TCP timeouts give its statement up) and
        closes its connection; it calls nothing after this. An actor closes its feed on
        failure, before its restart: waiting here would hold the restart up."""
        self._stop.set()

    def state(self) -> OrderFeedState:
        with self._lock:
            return OrderFeedState(
                connected=self._connected,
                backend_pid=self._backend_pid,
                schema=self._schema,
                notices=self._notices,
                connects=self._connects,
                skipped=self._skipped,
                last_error=self._last_error,
            )

    # -- the feed's thread -------------------------------------------------------------

    def _run(self) -> None:
        delay_s = self._reconnect_first_s
        while not self._stop.is_set():
            self._lasted = False
            try:
                self._listen()
                error = "the listening connection ended"
            except Exception as caught:  # noqa: BLE001  (whatever it was, listen again)
                error = f"{type(caught).__name__}: {str(caught).strip()[:300]}"
            if self._stop.is_set():
                break
            if self._lasted:
                delay_s = self._reconnect_first_s  # it worked for a while
            self._lost(error, delay_s)
            self._stop.wait(delay_s)
            delay_s = min(delay_s * 2, self._reconnect_max_s)

    def _listen(self) -> None:
        """Listen until the connection fails (raised) or the feed is closed; ``_lasted``
        once it has answered a heartbeat."""
        connection, schema = storage.listen_connection(self._engine, self._server_idle_timeout_s)
        with self._lock:
            self._connected = True
            self._backend_pid = connection.info.backend_pid
            self._schema = schema
            self._connects += 1
        logger.bind(action="order_feed.listening", schema=schema).info(
            f"{self.name}: listening for orders stored in schema {schema}"
        )
        if self._on_listening is not None and not self._stop.is_set():
            # What was written while no session listened was told to nobody.
            self._call(self._on_listening)
        try:
            while not self._stop.is_set():
                for notice in connection.notifies(timeout=self._heartbeat_s):
                    self._take(notice.payload, schema)
                    if self._stop.is_set():
                        break
                if self._stop.is_set():
                    break
                connection.execute("SELECT 1")  # the connection still answers
                self._lasted = True
        finally:
            with self._lock:
                self._connected = False
                self._backend_pid = None
            connection.close()

    def _take(self, payload: str, schema: str) -> None:
        if self._stop.is_set():
            return  # closed: its owner is gone
        notice = storage.parse_order_notice(payload)
        if notice is None or notice.schema != schema:
            with self._lock:
                self._skipped += 1
            return
        with self._lock:
            self._notices += 1
        self._call(lambda: self._on_market(notice.market_id))

    def _call(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception as error:  # noqa: BLE001  (a hint: the feed goes on)
            logger.bind(action="order_feed.callback_failed").error(
                f"{self.name}: passing on a notice failed: {error!r}"
            )

    def _lost(self, error: str, delay_s: float) -> None:
        with self._lock:
            self._last_error = error
        logger.bind(action="order_feed.lost", error=error).warning(
            f"{self.name}: not listening ({error}); again in {delay_s:.1f}s, when every "
            "market watched is read for what was written meanwhile"
        )
