"""The typed, validated configuration of a localnet."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from localnet.errors import InvalidLocalnetConfig
from localnet.faults import Faults

__all__ = ["MAX_ENDPOINTS", "LocalnetConfig"]

MAX_ENDPOINTS = 16
MAX_PORT = 65535


@dataclass(frozen=True)
class LocalnetConfig:
    """How a localnet runs.

    ``port=0`` lets the operating system choose the first port; the other
    endpoints still take the ports that follow it. ``slot_ms=0`` is manual
    mode: slots advance only when asked (``advance_slots``), which is what
    most tests use.
    """

    host: str = "127.0.0.1"
    port: int = 8899
    endpoints: int = 1
    slot_ms: int = 400
    # processed -> confirmed: a slot lands, and is confirmed this many slots later.
    confirmation_depth_slots: int = 1
    # confirmed -> finalized, like a real cluster's ~32-slot root distance.
    finalization_depth_slots: int = 31
    # A sent transaction lands this many slots after the slot it was received in.
    landing_delay_slots: int = 1
    genesis_slot: int = 0
    # getHealth reports "behind" past this distance, like --health-check-slot-distance.
    health_check_slot_distance: int = 150
    # Without searchTransactionHistory, statuses older than this are forgotten (status cache).
    status_cache_slots: int = 300
    # How far back account state is kept for confirmed/finalized reads and lagging endpoints.
    state_retention_slots: int = 512
    # How long landed transactions are remembered (getTransaction, history searches):
    # 216,000 slots is a day at 400 ms. Older ones are forgotten, bounding memory.
    transaction_history_slots: int = 216_000
    faucet_lamports: int = 10**18
    fault_seed: int = 0
    # Faults each endpoint starts with, by index (fewer than endpoints: the rest healthy),
    # e.g. a load balancer over a lagging and a pruned backend on one URL.
    endpoint_faults: tuple[Faults, ...] = ()
    # Each endpoint's WebSocket PubSub listens this many ports above its JSON-RPC port,
    # as a real node's does (8899 -> 8900, which is where web3.js looks); 0 turns it off.
    # With the default 1, endpoints' JSON-RPC ports step by 2 (8899, 8901...) so that
    # every endpoint keeps port+1; with a larger offset they stay consecutive.
    pubsub_port_offset: int = 1

    def __post_init__(self) -> None:
        _check_loopback(self.host)
        _check_range("endpoints", self.endpoints, 1, MAX_ENDPOINTS)
        _check_range("pubsub_port_offset", self.pubsub_port_offset, 0, 1_000)
        highest = max(max(rpc, ws or 0) for rpc, ws in self.port_offsets)
        _check_range("port", self.port, 0, MAX_PORT - highest)
        _check_range("slot_ms", self.slot_ms, 0, 60_000)
        _check_range("confirmation_depth_slots", self.confirmation_depth_slots, 0, 1_000)
        _check_range("finalization_depth_slots", self.finalization_depth_slots, 0, 1_000)
        _check_range("landing_delay_slots", self.landing_delay_slots, 1, 100)
        _check_range("genesis_slot", self.genesis_slot, 0, 2**62)
        _check_range("health_check_slot_distance", self.health_check_slot_distance, 1, 10_000)
        _check_range("status_cache_slots", self.status_cache_slots, 1, 1_000_000)
        minimum_retention = self.confirmation_depth_slots + self.finalization_depth_slots + 1
        _check_range(
            "state_retention_slots", self.state_retention_slots, minimum_retention, 100_000
        )
        history_floor = max(self.status_cache_slots, 150)
        _check_range(
            "transaction_history_slots", self.transaction_history_slots, history_floor, 10**8
        )
        if self.pubsub_port_offset > 1 and self.pubsub_port_offset < self.endpoints:
            raise InvalidLocalnetConfig(
                f"pubsub_port_offset: {self.pubsub_port_offset} would put PubSub on another "
                f"endpoint's port; use 1 or at least endpoints ({self.endpoints})"
            )
        _check_range("faucet_lamports", self.faucet_lamports, 1, 2**63 - 1)
        if not isinstance(self.endpoint_faults, tuple) or not all(
            isinstance(faults, Faults) for faults in self.endpoint_faults
        ):
            raise InvalidLocalnetConfig("endpoint_faults: expected a tuple of Faults")
        if len(self.endpoint_faults) > self.endpoints:
            raise InvalidLocalnetConfig(
                f"endpoint_faults: {len(self.endpoint_faults)} given for {self.endpoints} endpoints"
            )

    @property
    def port_offsets(self) -> tuple[tuple[int, int | None], ...]:
        """Per endpoint: its JSON-RPC port and its PubSub port (``None``: off), from ``port``."""
        offset = self.pubsub_port_offset
        stride = 2 if offset == 1 else 1
        return tuple(
            (index * stride, index * stride + offset if offset else None)
            for index in range(self.endpoints)
        )

    @property
    def manual_slots(self) -> bool:
        """True when slots advance only on request (``slot_ms == 0``)."""
        return self.slot_ms == 0


def _check_range(field: str, value: int, lowest: int, highest: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidLocalnetConfig(f"{field}: expected an integer, got {value!r}")
    if not lowest <= value <= highest:
        raise InvalidLocalnetConfig(f"{field}: {value} is outside {lowest}..{highest}")


def _check_loopback(host: str) -> None:
    # Every route, the admin one included, binds to loopback only: nothing here
    # is meant to be reachable from another machine.
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = False
    if not is_loopback:
        raise InvalidLocalnetConfig(
            f"host: {host!r} is not a loopback address (127.0.0.0/8 or ::1)"
        )
