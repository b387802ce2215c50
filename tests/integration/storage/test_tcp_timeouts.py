"""A node's PostgreSQL connections carry the TCP timeouts derived from its lease TTL:
read back from the kernel (getsockopt on the connection's socket), not from our code."""

from __future__ import annotations

import os
import socket

import pytest

from crank_node.node.settings_layers import load_settings
from storage import open_engine


@pytest.mark.postgres
def test_a_node_engine_connection_has_the_lease_ttls_user_timeout_and_keepalive(
    pg_url: str,
) -> None:
    """lease_ttl_ms 6000: tcp_user_timeout 2000 ms, keepalive on, idle 1 s, every 1 s, 3 probes."""
    settings = load_settings(environ={}, flags={"db_url": pg_url, "lease_ttl_ms": 6000})
    engine = open_engine(settings.db_url, tcp_timeouts=settings.tcp_timeouts())
    try:
        with engine.connect() as connection:
            fd = connection.connection.driver_connection.pgconn.socket  # type: ignore[union-attr]
            with socket.socket(fileno=os.dup(fd)) as sock:
                options = {
                    name: sock.getsockopt(level, option)
                    for name, level, option in (
                        ("user_timeout_ms", socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
                        ("keepalive", socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                        ("idle_s", socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                        ("interval_s", socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                        ("count", socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                    )
                }
    finally:
        engine.dispose()
    assert options == {
        "user_timeout_ms": 2000,
        "keepalive": 1,
        "idle_s": 1,
        "interval_s": 1,
        "count": 3,
    }


@pytest.mark.postgres
def test_the_servers_end_of_a_node_connection_gives_a_vanished_node_up_as_soon(
    pg_url: str,
) -> None:
    """lease_ttl_ms 6000: the server's socket of the same connection has the same user
    timeout and keepalive (SHOW reads them back from the server's socket), so a node that
    vanished without a FIN (killed while partitioned) has its session closed in seconds,
    not after the server's default two hours."""
    settings = load_settings(environ={}, flags={"db_url": pg_url, "lease_ttl_ms": 6000})
    engine = open_engine(settings.db_url, tcp_timeouts=settings.tcp_timeouts())
    try:
        with engine.connect() as connection:
            shown = {
                name: connection.exec_driver_sql(f"SHOW {name}").scalar()
                for name in (
                    "tcp_user_timeout",
                    "tcp_keepalives_idle",
                    "tcp_keepalives_interval",
                    "tcp_keepalives_count",
                )
            }
    finally:
        engine.dispose()
    assert shown == {
        "tcp_user_timeout": "2000",
        "tcp_keepalives_idle": "1",
        "tcp_keepalives_interval": "1",
        "tcp_keepalives_count": "3",
    }
