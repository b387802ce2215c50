"""A fresh localnet per test (manual slots, three endpoints), stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from localnet import LocalnetConfig, LocalnetServer


@pytest.fixture
def localnet() -> Iterator[LocalnetServer]:
    server = LocalnetServer(LocalnetConfig(port=0, endpoints=3, slot_ms=0)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    """A plain HTTP client, for requests solana-py would not send as they are."""
    with httpx2.Client(timeout=5) as session:
        yield session
