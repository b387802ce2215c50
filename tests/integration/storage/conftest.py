"""Fixtures for storage tests on a real SQLite file and a real PostgreSQL server.

PostgreSQL tests use ``CRANK_TEST_PG_URL`` or the conventional local server
(tests/support/databases.py), and skip, saying why, when none answers. Each test gets a schema of its own (a fresh
``search_path``), dropped afterwards, so reruns and parallel runs never see
each other's rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from loguru import logger

REPO_ROOT = Path(__file__).resolve().parents[3]

T = TypeVar("T")


@pytest.fixture
def log_records() -> Iterator[list[dict[str, Any]]]:
    """Every loguru record emitted during the test, as ``record["extra"] | {"level": ...}``."""
    records: list[dict[str, Any]] = []

    def sink(message: Any) -> None:
        record = message.record
        records.append(dict(record["extra"]) | {"level": record["level"].name})

    handler = logger.add(sink, level="DEBUG")
    try:
        yield records
    finally:
        logger.remove(handler)


def poll_until(probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.01) -> T:
    """``probe()``'s first non-None answer, asked every ``interval_s`` until ``timeout_s`` passes.

    For waits on the real clock (a lease's TTL running out); fails the test
    rather than hang.
    """
    deadline = threading.Event()
    timer = threading.Timer(timeout_s, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            answer = probe()
            if answer is not None:
                return answer
            deadline.wait(interval_s)
    finally:
        timer.cancel()
    pytest.fail(f"condition not met within {timeout_s}s")


class Worker:
    """A ``tests.integration.storage.workers`` subprocess, spoken to over its pipes."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.storage.workers", *args],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._arrived:
                self._lines.append(line)
                self._arrived.notify_all()
        with self._arrived:
            self._lines.append("")  # end of output
            self._arrived.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def receive(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """The worker's next JSON line; fails the test on a timeout or an early exit."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: bool(self._lines), timeout=timeout_s):
                pytest.fail(f"worker {self.pid} said nothing within {timeout_s}s")
            line = self._lines.pop(0)
        if not line:
            pytest.fail(f"worker {self.pid} exited early: {self.stderr()}")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def stderr(self) -> str:
        self.close()
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def close(self, timeout_s: float = 30.0) -> int:
        """Close stdin and wait for the exit code (killing the worker past ``timeout_s``)."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=timeout_s)

    def finish(self) -> None:
        """Close the worker down and release every pipe."""
        self.close()
        self._reader.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn_worker() -> Iterator[Callable[..., Worker]]:
    """Start worker subprocesses; every one is stopped and reaped after the test."""
    workers: list[Worker] = []

    def spawn(*args: str) -> Worker:
        worker = Worker(*args)
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        worker.finish()
