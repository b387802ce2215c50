"""Orders stored or cancelled, told to every node: PostgreSQL ``NOTIFY``, sent with
the write.

A node's OrderMonitor reads a market's orders on a timer (``polling_interval_ms``)
and, for the orders its own intake stores or cancels, on a wake-up
(``intake_wakeup_ms``). An order stored or cancelled through another node's intake
(or any other process) waited for the timer. On PostgreSQL the writes that store
an order (:func:`notice_of` in the INSERT's ``RETURNING``; :func:`notify_orders_changed`
for a batch) or cancel one (the same in the UPDATE's, a cancel-all's) add a
``pg_notify`` to their transaction: the server delivers it to every session
listening on :data:`ORDER_CHANNEL` when, and only if, that transaction commits.
:func:`listen_connection` gives a node a connection of its own to listen on
(:class:`actors.order_feed.OrderFeed`).

The payload names the schema as well as the market (``{"schema": ..., "market":
...}``): notifications are per database, and deployments (or tests) that share a
database in separate schemas must not wake each other. A notice is a hint: it only
makes a read come sooner, the read decides everything, and a notice lost (a
listener reconnecting, a full queue) leaves the change to the timer, as before.
SQLite has nothing like it: there, changes made by other processes wait for the
timer.
"""

from __future__ import annotations

import json
import math
from typing import Any

import psycopg
from sqlalchemy import String, cast, func, literal, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "ORDER_CHANNEL",
    "OrderNotice",
    "listen_connection",
    "notice_of",
    "notify_orders_changed",
    "parse_order_notice",
]

ORDER_CHANNEL = "crank_orders_changed"
_MAX_PAYLOAD_CHARS = 1_000  # a schema and a market id are far shorter
_IDLE_SESSION_TIMEOUT_SINCE = 140_000  # server_version_num of PostgreSQL 14


class OrderNotice:
    """A notice's schema and market, as :func:`parse_order_notice` read them."""

    __slots__ = ("market_id", "schema")

    def __init__(self, schema: str, market_id: str) -> None:
        self.schema = schema
        self.market_id = market_id


def notify_orders_changed(connection: Connection, market_id: str) -> None:
    """In a transaction storing or cancelling orders of ``market_id``: tell the
    listeners when it commits (PostgreSQL; nothing on another engine)."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(notice_of(literal(market_id, String))))


def notice_of(market_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """The ``pg_notify`` of an order of ``market_id`` stored or cancelled, as an
    expression: put in the ``RETURNING`` of the statement that writes it, the notice
    costs no statement more (PostgreSQL only)."""
    payload = func.json_build_object(
        "schema", func.current_schema(), "market", market_id, type_=String
    )
    return func.pg_notify(ORDER_CHANNEL, cast(payload, String))


def parse_order_notice(payload: str) -> OrderNotice | None:
    """The schema and market a notice's payload names; None if it is not one (anyone
    who can connect may NOTIFY on any channel)."""
    if len(payload) > _MAX_PAYLOAD_CHARS:
        return None
    try:
        document: Any = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    schema, market_id = document.get("schema"), document.get("market")
    if not isinstance(schema, str) or not isinstance(market_id, str) or not market_id:
        return None
    return OrderNotice(schema, market_id)


def listen_connection(engine: Engine, idle_timeout_s: float) -> tuple[psycopg.Connection[Any], str]:
    """A connection to ``engine``'s PostgreSQL database made as its pool makes them
    (schema, timeouts, TCP keepalives), but detached from the pool, in autocommit,
    listening on :data:`ORDER_CHANNEL`; and its current schema. The caller closes it.
    Raises psycopg or SQLAlchemy errors as they come.

    The server ends the session once it has sent nothing for ``idle_timeout_s``
    (``idle_session_timeout``, PostgreSQL 14 and later; older servers go without): the
    server keeps every notice until each listener has read it, and once its queue is
    full a transaction that notifies fails at commit, storing no order. A listener
    that stopped reading (its process paused, say) with its session still open would
    fill it, at a few kilobytes a second, over days."""
    if engine.dialect.name != "postgresql":
        raise ValueError(f"order notices need PostgreSQL, not {engine.dialect.name}")
    pooled = engine.raw_connection()
    connection: Any = pooled.driver_connection  # before detach(), which forgets it
    pooled.detach()  # closed for good by the caller, never handed back to the pool
    try:
        connection.rollback()  # the pool's ping may have begun a transaction
        connection.autocommit = True
        row = connection.execute("SELECT current_schema()").fetchone()
        if connection.info.server_version >= _IDLE_SESSION_TIMEOUT_SINCE:
            timeout_ms = max(1, math.ceil(idle_timeout_s * 1000))
            connection.execute(f"SET idle_session_timeout = {timeout_ms}")
        connection.execute(f"LISTEN {ORDER_CHANNEL}")
    except BaseException:
        connection.close()
        raise
    schema = row[0] if row is not None else None
    if not isinstance(schema, str):
        connection.close()
        raise ValueError("the connection has no current schema (an empty search_path?)")
    return connection, schema
