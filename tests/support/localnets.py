"""The ``localnet`` fixture, the one definition every tier uses: a real localnet (LiteSVM
behind JSON-RPC) on free ports, stopped after the test.

A module, class or test chooses its chain with the closest ``localnet`` marker::

    pytestmark = pytest.mark.localnet(endpoints=3, slot_ms=50, advance_slots=10)

Every keyword but ``advance_slots`` is a :class:`~localnet.LocalnetConfig` field;
``advance_slots`` is how many slots are advanced by hand before the test starts (a
manual-mode chain then has a confirmed past). Without the marker: one endpoint, slots
advanced only by hand (``slot_ms=0``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localnet import LocalnetConfig, LocalnetServer

DEFAULTS: dict[str, Any] = {"endpoints": 1, "slot_ms": 0}


@pytest.fixture
def localnet(request: pytest.FixtureRequest) -> Iterator[LocalnetServer]:
    """A started localnet configured by the closest ``localnet`` marker."""
    marker = request.node.get_closest_marker("localnet")
    options = {**DEFAULTS, **(marker.kwargs if marker else {})}
    advance_slots = int(options.pop("advance_slots", 0))
    with LocalnetServer(LocalnetConfig(port=0, **options)) as server:
        if advance_slots:
            server.advance_slots(advance_slots)
        yield server
