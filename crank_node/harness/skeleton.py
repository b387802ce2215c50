"""The run skeleton the demo and the chaos run share: stop requests from signals, a
fresh working directory, a new wallet, and bounded numbers for their arguments."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from solders.keypair import Keypair

__all__ = ["MAX_SEED", "StopRequests", "bounded", "fresh_workdir", "new_wallet"]

MAX_SEED = 2**32 - 1


def bounded(kind: Callable[[str], Any], lowest: float, highest: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lowest <= value <= highest:
            raise argparse.ArgumentTypeError(f"must be within {lowest:g}..{highest:g}, got {text}")
        return value

    return parse


class StopRequests:
    """SIGINT/SIGTERM: the first stops the makers and starts the end; the next one
    (or the first, once the makers have stopped by themselves: the demo sets
    :attr:`stop` then) hurries it: the drain wait is cut short, the nodes told to hurry."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hurry = threading.Event()
        self._on_hurry: list[Callable[[], None]] = []

    def request(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        # No printing here: a signal handler may run in the middle of a print.
        if not self.stop.is_set():
            self.stop.set()
            return
        self.hurry.set()
        for callback in self._on_hurry:
            callback()

    def on_hurry(self, callback: Callable[[], None]) -> None:
        self._on_hurry.append(callback)
        if self.hurry.is_set():
            callback()

    @contextmanager
    def handling_signals(self) -> Iterator[StopRequests]:
        """SIGINT and SIGTERM go to :meth:`request` inside the block; the handlers
        before it are put back after it."""
        previous = {
            number: signal.signal(number, self.request)
            for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def fresh_workdir(
    workdir: Path, logs: tuple[str, ...] = ("demo.jsonl", "demo-node-*.jsonl")
) -> Path:
    """``workdir``, created if need be, without the files of an earlier run: the
    database, the wallet, and the log files matching ``logs``."""
    workdir.mkdir(parents=True, exist_ok=True)
    stale = ["crank.db", "crank.db-wal", "crank.db-shm", "crank.db-journal", "wallet.json"]
    for name in stale:
        (workdir / name).unlink(missing_ok=True)
    for pattern in logs:
        for log in workdir.glob(pattern):
            log.unlink()
    return workdir


def new_wallet(path: Path) -> Keypair:
    """A new keypair in a Solana CLI keypair file readable by its owner only,
    read back as a node reads it."""
    from solders.keypair import Keypair  # noqa: PLC0415  (solders is slow to import)

    from crank_node.node.keypairs import load_keypair  # noqa: PLC0415

    path.unlink(missing_ok=True)
    # Created owner-only from the start: it holds a secret key.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(list(bytes(Keypair())), handle)
    return load_keypair(path)
