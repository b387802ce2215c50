"""An HTTP client for the tests that speak JSON-RPC to the localnet themselves. The
localnet is the shared fixture (tests/support/localnets.py); these modules ask for three
endpoints with ``pytest.mark.localnet(endpoints=3)``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    """A plain HTTP client, for requests solana-py would not send as they are."""
    with httpx2.Client(timeout=5) as session:
        yield session
