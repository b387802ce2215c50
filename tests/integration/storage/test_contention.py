"""Real processes contending for leases: tokens only go up, stale writes never land.

Eight worker processes (``workers.py contend``) fight over 50 keys with
200 ms leases for 2,000 cycles in all: acquire, one to three fenced writes,
sometimes a renewal, then a release, or abandoning the lease to expire (and
writing with it later, as a zombie would), or writing again after release.
Each logs every acquisition and write attempt to its own JSONL file; the
database's append-only write log records, in the order the database accepted
them, every write that landed.
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine, make_url

from storage import LeaseStore, open_engine, read_transaction, upgrade, write_transaction
from storage.models import FencingSequence
from tests.integration.storage.conftest import Worker
from tests.integration.storage.workers import WRITE_LOG, Contender, create_scratch

pytestmark = pytest.mark.realtime

PROCESSES = 8
KEYS = 50
CYCLES_PER_PROCESS = 250
TTL_MS = 200


def _run_workers(
    url: str, tmp_path: Path, spawn_worker: Callable[..., Worker]
) -> list[dict[str, Any]]:
    workers, logs = [], []
    for index in range(PROCESSES):
        log = tmp_path / f"worker-{index}.jsonl"
        logs.append(log)
        workers.append(
            spawn_worker(
                "contend",
                "--url",
                url,
                "--worker",
                str(index),
                "--keys",
                str(KEYS),
                "--cycles",
                str(CYCLES_PER_PROCESS),
                "--ttl-ms",
                str(TTL_MS),
                "--seed",
                str(index),
                "--log",
                str(log),
            )
        )
    # Generous bounds: on a two-core box with a load average of 15-20, eight
    # workers' 2,000 cycles took up to 180 s; on an idle one, about 20 s.
    for worker in workers:
        assert "ready" in worker.receive(timeout_s=120)
    for worker in workers:  # all start together, for real contention
        worker.send("go")
    for worker in workers:
        assert "done" in worker.receive(timeout_s=500)
        assert worker.close() == 0
    return [
        json.loads(line) for log in logs for line in log.read_text(encoding="utf-8").splitlines()
    ]


def _accepted_writes_in_database_order(engine: Engine) -> dict[str, list[int]]:
    tokens: dict[str, list[int]] = defaultdict(list)
    with read_transaction(engine) as connection:
        for key, token in connection.execute(
            select(WRITE_LOG.c.key, WRITE_LOG.c.fencing_token).order_by(WRITE_LOG.c.id)
        ):
            tokens[key].append(token)
    return tokens


def _check_run(engine: Engine, events: list[dict[str, Any]]) -> None:
    acquisitions = [event for event in events if event["ev"] == "acquire"]
    # Thousands of cycles ran, most of them won a lease.
    assert len(acquisitions) > PROCESSES * CYCLES_PER_PROCESS // 2

    # No token was ever handed out twice for a key...
    grants = Counter((event["key"], event["token"]) for event in acquisitions)
    assert max(grants.values()) == 1
    # ...and per key, a higher token was never granted at an earlier database time.
    by_key: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for event in acquisitions:
        by_key[event["key"]].append((event["token"], event["acquired_at"]))
    for key, grants_of_key in by_key.items():
        times_in_token_order = [acquired_at for _token, acquired_at in sorted(grants_of_key)]
        assert times_in_token_order == sorted(times_in_token_order), key

    # Per key, the writes the database accepted never go back to an older token.
    accepted = _accepted_writes_in_database_order(engine)
    for key, tokens in accepted.items():
        assert tokens == sorted(tokens), f"{key}: a stale token's write landed after a newer one"
    # Every write a worker saw accepted is in the database, and nothing else is.
    reported = [event for event in events if event["ev"].endswith("write") and event["ok"]]
    assert sum(len(tokens) for tokens in accepted.values()) == len(reported)
    # A write after release must always be refused.
    after_release = [event for event in events if event["ev"] == "stale_write"]
    assert after_release and not any(event["ok"] for event in after_release)

    # The sequence is at or past every token granted.
    with read_transaction(engine) as connection:
        last = {row.key: row.last_token for row in connection.execute(select(FencingSequence))}
    for key, token in grants:
        assert last[key] >= token


def _contend(url: str, tmp_path: Path, spawn_worker: Callable[..., Worker]) -> None:
    engine = open_engine(url)
    try:
        upgrade(engine)
        create_scratch(engine, [f"key:{index}" for index in range(KEYS)])
        events = _run_workers(url, tmp_path, spawn_worker)
        _check_run(engine, events)
    finally:
        engine.dispose()


@pytest.mark.timeout(600)
def test_eight_processes_on_sqlite_never_reuse_a_token_or_land_a_stale_write(
    sqlite_file_url: str, tmp_path: Path, spawn_worker: Callable[..., Worker]
) -> None:
    """On one SQLite file, per key: tokens strictly increase and no write with an old token is accepted."""
    _contend(sqlite_file_url, tmp_path, spawn_worker)


@pytest.mark.timeout(600)
@pytest.mark.postgres
def test_eight_processes_on_postgresql_never_reuse_a_token_or_land_a_stale_write(
    pg_url: str, tmp_path: Path, spawn_worker: Callable[..., Worker]
) -> None:
    """On PostgreSQL, per key: tokens strictly increase and no write with an old token is accepted."""
    # Commits skip the WAL flush wait: durability on a crash is not under test, and it
    # keeps this run within the suite's time budget on a two-core machine.
    url = make_url(pg_url)
    options = f"{url.query['options']} -csynchronous_commit=off"
    _contend(
        url.update_query_dict({"options": options}).render_as_string(hide_password=False),
        tmp_path,
        spawn_worker,
    )


@pytest.mark.postgres
def test_a_contender_whose_acquire_is_refused_as_busy_counts_it_as_not_acquired(
    pg_url: str,
) -> None:
    """An acquire that waits on the key's rows past its 200 ms lock timeout raises
    DatabaseBusy; the contender logs the cycle as ``acquire_busy`` and carries on, as
    when the key is held (under load this used to kill a worker of the run above)."""
    engine = open_engine(pg_url)
    try:
        upgrade(engine)
        create_scratch(engine, ["key:0"])
        log = io.StringIO()
        contender = Contender(LeaseStore(engine, "contender"), ["key:0"], 0.2, seed=0, log=log)
        with write_transaction(engine) as blocker:
            # An uncommitted first token for the key: the acquire's upsert waits on it.
            blocker.execute(insert(FencingSequence).values(key="key:0", last_token=1))
            contender.cycle()
        assert [json.loads(line) for line in log.getvalue().splitlines()] == [
            {"ev": "acquire_busy", "key": "key:0"}
        ]
    finally:
        engine.dispose()
