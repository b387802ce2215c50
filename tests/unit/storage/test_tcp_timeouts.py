"""The PostgreSQL connection's TCP timeouts, derived from the lease TTL: a dead
connection is found within a third of the TTL, and a TTL too short for that is
refused when the settings are loaded, naming the key and the smallest usable TTL."""

from __future__ import annotations

import pytest

from crank_node.node.settings import InvalidSettings
from crank_node.node.settings_layers import load_settings
from storage import TcpTimeouts

PG = "postgresql+psycopg://crank@db.example:5432/crank"


@pytest.mark.parametrize("ttl_s", [1.5, 2.0, 3.0, 6.0, 15.0, 60.0, 600.0])
def test_a_silent_connection_is_given_up_within_a_third_of_the_lease_ttl(ttl_s: float) -> None:
    """tcp_user_timeout is a third of the TTL, and keepalive probing of an idle
    connection (idle + count x interval) ends within it, at whole seconds of at least 1."""
    tcp = TcpTimeouts.for_lease_ttl(ttl_s)
    assert tcp.user_timeout_ms == int(ttl_s * 1000 / 3)
    assert tcp.keepalives_idle_s >= 1 and tcp.keepalives_interval_s >= 1
    probing_s = tcp.keepalives_idle_s + tcp.keepalives_count * tcp.keepalives_interval_s
    # Short TTLs meet libpq's 1 s floor (1 + 3 x 1); Linux's tcp_user_timeout, which
    # also bounds failing probes, still ends the connection in time.
    assert probing_s <= max(tcp.user_timeout_ms / 1000, 4)


def test_the_default_lease_ttl_gives_the_timeouts_chaos_runs_measured() -> None:
    """15 s: 5 s user timeout, probes after 2 s, every 1 s, 3 times (what issue 21's
    netns runs measured as ~5 s to fail a blackholed call)."""
    assert TcpTimeouts.for_lease_ttl(15.0) == TcpTimeouts(5000, 2, 1, 3)
    assert TcpTimeouts.for_lease_ttl(15.0).connect_args() == {
        "tcp_user_timeout": 5000,
        "keepalives": 1,
        "keepalives_idle": 2,
        "keepalives_interval": 1,
        "keepalives_count": 3,
    }


def test_a_lease_ttl_too_short_to_find_a_dead_connection_is_refused_naming_the_minimum() -> None:
    with pytest.raises(ValueError, match="use a lease TTL of at least 1500 ms"):
        TcpTimeouts.for_lease_ttl(1.4)


def test_settings_refuse_such_a_ttl_on_postgresql_only_and_derive_the_timeouts() -> None:
    """Loading: lease_ttl_ms 1000 on PostgreSQL is a bad setting named as such; on
    SQLite (no connection to lose) it is fine and there are no TCP timeouts."""
    with pytest.raises(InvalidSettings) as caught:
        load_settings(
            environ={}, flags={"db_url": PG, "lease_ttl_ms": 1000, "membership_interval_ms": 300}
        )
    assert [problem.key for problem in caught.value.problems] == ["lease_ttl_ms"]
    assert "at least 1500 ms" in str(caught.value)
    sqlite = load_settings(
        environ={},
        flags={
            "db_url": "sqlite:////tmp/x/crank.db",
            "lease_ttl_ms": 1000,
            "membership_interval_ms": 300,
        },
    )
    assert sqlite.tcp_timeouts() is None
    pg = load_settings(environ={}, flags={"db_url": PG, "lease_ttl_ms": 6000})
    assert pg.tcp_timeouts() == TcpTimeouts(2000, 1, 1, 3)
