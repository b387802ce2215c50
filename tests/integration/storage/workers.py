"""Worker processes for the multi-process storage tests.

Run as ``python -m tests.integration.storage.workers COMMAND ...`` from the
repository root. Each worker talks to its test over pipes: it prints one JSON
line per step on stdout and takes commands, one per line, on stdin, so the
test waits on the pipe, never on the clock. Logs that are too long for a
pipe (every acquisition and fenced write of a contention run) go to a JSONL
file the test reads afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from loguru import logger
from sqlalchemy import Column, Integer, MetaData, String, Table, update
from sqlalchemy.engine import Engine

from storage import DatabaseBusy, Lease, LeaseLost, LeaseStore, open_engine, write_transaction

# Scratch tables the fenced writes go to: a cell per key (last writer wins) and
# an append-only log whose id order is the order the database accepted writes in.
SCRATCH = MetaData()
CELLS = Table(
    "fenced_cells",
    SCRATCH,
    Column("key", String(200), primary_key=True),
    Column("fencing_token", Integer, nullable=False),
    Column("writer", String(200), nullable=False),
    Column("writes", Integer, nullable=False),
)
WRITE_LOG = Table(
    "fenced_write_log",
    SCRATCH,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
    Column("fencing_token", Integer, nullable=False),
    Column("writer", String(200), nullable=False),
)


def create_scratch(engine: Engine, keys: Sequence[str]) -> None:
    """The scratch tables, with one cell per key."""
    SCRATCH.create_all(engine)
    if not keys:
        return
    with write_transaction(engine) as connection:
        connection.execute(
            CELLS.insert(),
            [{"key": key, "fencing_token": 0, "writer": "", "writes": 0} for key in keys],
        )


def fenced_write(store: LeaseStore, lease: Lease) -> bool:
    """One fenced transaction: bump the key's cell and append to the log. False if rejected."""
    try:
        with store.fenced(lease) as fence:
            fence.execute(
                update(CELLS)
                .where(CELLS.c.key == lease.key)
                .values(
                    fencing_token=lease.fencing_token,
                    writer=store.holder,
                    writes=CELLS.c.writes + 1,
                )
            )
            fence.insert(
                WRITE_LOG,
                {"key": lease.key, "fencing_token": lease.fencing_token, "writer": store.holder},
            )
    except LeaseLost:
        return False
    return True


def _emit(stream: TextIO, **event: Any) -> None:
    stream.write(json.dumps(event, default=str) + "\n")
    stream.flush()


def _wait_for(command: str) -> None:
    line = sys.stdin.readline().strip()
    if line != command:
        raise SystemExit(f"expected {command!r} on stdin, got {line!r}")


class Contender:
    """One process of the contention run: acquire, write, release or abandon, repeat."""

    def __init__(self, store: LeaseStore, keys: list[str], ttl_s: float, seed: int, log: TextIO):
        self.store, self.keys, self.ttl_s, self.log = store, keys, ttl_s, log
        self.random = random.Random(seed)
        self.abandoned: list[Lease] = []

    def write(self, lease: Lease, kind: str) -> bool:
        accepted = fenced_write(self.store, lease)
        _emit(self.log, ev=kind, key=lease.key, token=lease.fencing_token, ok=accepted)
        return accepted

    def cycle(self) -> None:
        if self.abandoned and self.random.random() < 0.3:
            # A zombie: writes with a lease it stopped caring about; expired or taken over by now, or not.
            self.write(self.abandoned.pop(0), "zombie_write")
        key = self.random.choice(self.keys)
        try:
            lease = self.store.acquire(key, self.ttl_s)
        except DatabaseBusy:
            # Another contender held the key's rows past the acquire's lock timeout
            # (likely on a loaded machine): nothing was granted, as when it is held.
            _emit(self.log, ev="acquire_busy", key=key)
            return
        if lease is None:
            return
        _emit(
            self.log,
            ev="acquire",
            key=lease.key,
            token=lease.fencing_token,
            acquired_at=lease.acquired_at.isoformat(),
        )
        for _ in range(self.random.randint(1, 3)):
            if not self.write(lease, "write"):
                return
        if self.random.random() < 0.2:
            try:
                lease = self.store.renew(lease, self.ttl_s)
            except LeaseLost:
                return
            self.write(lease, "write")
        if self.random.random() < 0.1:
            self.abandoned.append(lease)
            return
        self.store.release(lease)
        if self.random.random() < 0.3:
            # Released: whatever happens next, this write must be refused.
            self.write(lease, "stale_write")


def contend(args: argparse.Namespace) -> None:
    logger.remove()  # thousands of events: the JSONL log is the record
    engine = open_engine(args.url, busy_timeout_ms=30_000)
    holder = f"worker-{args.worker}-pid-{os.getpid()}"
    store = LeaseStore(engine, holder)
    keys = [f"key:{index}" for index in range(args.keys)]
    with Path(args.log).open("w", encoding="utf-8") as log:
        contender = Contender(store, keys, args.ttl_ms / 1000, args.seed, log)
        _emit(sys.stdout, ready=holder)
        _wait_for("go")
        for _ in range(args.cycles):
            contender.cycle()
    engine.dispose()
    _emit(sys.stdout, done=holder)


def hold(args: argparse.Namespace) -> None:
    """Acquire one lease, write once, then write again each time stdin says ``write``."""
    logger.remove()
    engine = open_engine(args.url)
    store = LeaseStore(engine, args.holder)
    lease = store.acquire(args.key, args.ttl_ms / 1000)
    if lease is None:
        raise SystemExit(f"{args.key} is already held")
    _emit(sys.stdout, token=lease.fencing_token, ok=fenced_write(store, lease))
    for line in sys.stdin:
        if line.strip() != "write":
            break
        accepted = fenced_write(store, lease)
        try:
            store.renew(lease, args.ttl_ms / 1000)
            renewed = True
        except LeaseLost:
            renewed = False
        _emit(sys.stdout, token=lease.fencing_token, ok=accepted, renewed=renewed)
    engine.dispose()


def hold_write_lock(args: argparse.Namespace) -> None:
    """Open a write transaction, write half of a two-row change, wait for ``commit``, finish it."""
    logger.remove()
    engine = open_engine(args.url)
    with write_transaction(engine) as connection:
        connection.execute(
            CELLS.insert().values(key="holder:first", fencing_token=1, writer="holder", writes=1)
        )
        _emit(sys.stdout, holding=True)
        _wait_for("commit")
        connection.execute(
            CELLS.insert().values(key="holder:second", fencing_token=1, writer="holder", writes=1)
        )
    _emit(sys.stdout, committed=True)
    engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="workers")
    commands = parser.add_subparsers(dest="command", required=True)
    contend_parser = commands.add_parser("contend")
    for name in ("--worker", "--keys", "--cycles", "--ttl-ms", "--seed"):
        contend_parser.add_argument(name, type=int, required=True)
    contend_parser.add_argument("--log", required=True)
    contend_parser.set_defaults(run=contend)
    hold_parser = commands.add_parser("hold")
    hold_parser.add_argument("--key", required=True)
    hold_parser.add_argument("--holder", required=True)
    hold_parser.add_argument("--ttl-ms", type=int, required=True)
    hold_parser.set_defaults(run=hold)
    commands.add_parser("hold-write-lock").set_defaults(run=hold_write_lock)
    for sub in (contend_parser, hold_parser, commands.choices["hold-write-lock"]):
        sub.add_argument("--url", required=True)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
