"""The chaos run's TCP relay (crank_node/chaos/forwarder.py) between a node's network
namespace and PostgreSQL: a client killed while its packets are dropped sends no FIN
that arrives, and the relay must still find it gone and close its server-side
connection (a 30-minute run once used up PostgreSQL's connections this way)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest
from sqlalchemy import make_url

from crank_node.chaos.forwarder import Forwarder, Route
from crank_node.chaos.netns import NetLab, netns_unavailable
from tests.integration.storage.conftest import poll_until
from tests.support.node_process import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

CLIENT = """
import sys, psycopg
connection = psycopg.connect(sys.argv[1], application_name=sys.argv[2])
print(connection.info.backend_pid, flush=True)
sys.stdin.read()  # until killed
"""


def _sessions(admin_url: str, application: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        found = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application,)
        ).fetchone()
    assert found is not None
    return int(found[0])


def test_a_client_killed_while_cut_off_leaves_no_server_session_behind(pg_url: str) -> None:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"namespaces unavailable: {reason}")
    target = make_url(pg_url)
    admin_url = f"host={target.host or '127.0.0.1'} port={target.port or 5432} " + (
        f"user={target.username or 'postgres'} dbname={target.database}"
    )
    lab = NetLab.create(1).open()
    port = free_port()
    relay = Forwarder(
        [Route(lab.plan.gateway, port, target.host or "127.0.0.1", target.port or 5432)]
    ).start()
    application = f"relay-probe-{uuid.uuid4().hex[:8]}"
    client = subprocess.Popen(
        [
            *lab.plan.exec_prefix(1),
            sys.executable,
            "-c",
            CLIENT,
            f"host={lab.plan.gateway} port={port} user={target.username or 'postgres'} "
            f"dbname={target.database}",
            application,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip().isdigit(), "the client never connected"
        assert _sessions(admin_url, application) == 1
        lab.partition(1, [port], cut=True)
        client.kill()  # its FIN is dropped: nothing tells the relay
        client.wait(10)
        poll_until(
            lambda: True if _sessions(admin_url, application) == 0 else None,
            timeout_s=30,
            interval_s=0.2,
        )
    finally:
        if client.poll() is None:
            client.kill()
        client.wait(10)
        for stream in (client.stdin, client.stdout):
            if stream is not None:
                stream.close()
        relay.stop()
        lab.close()
