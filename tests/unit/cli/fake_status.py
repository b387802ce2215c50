"""A /status document as Node.status() builds it, from the real state types,
for tests of what reads it (tables, metrics) without a node."""

from __future__ import annotations

from typing import Any

from actors.rpc import BackpressureStats, EndpointState, LoadStatus, RouterState


def endpoint(name: str, **changes: Any) -> EndpointState:
    fields: dict[str, Any] = {
        "name": name,
        "url": f"https://{name}.example/***",
        "weight": 1.0,
        "send": True,
        "breaker": "closed",
        "consecutive_failures": 0,
        "half_open_in_s": None,
        "latency_ms": 25.0,
        "highest_slot": 100,
        "slots_behind": 0,
        "in_flight": 0,
        "successes": 40,
        "failures": 2,
        "last_error": None,
        "requests_by_method": {
            "getSlot": {"success": 30, "failure": 2},
            "sendTransaction": {"success": 9, "error": 1},
        },
    }
    fields.update(changes)
    return EndpointState(**fields)


def router(*endpoints: EndpointState) -> dict[str, Any]:
    stats = BackpressureStats(
        in_flight=3,
        max_in_flight=100,
        utilization=0.03,
        peak_in_flight=10,
        peak_utilization=0.1,
        accepted={"critical": 5, "normal": 7, "low": 1},
        refused={"critical": 0, "normal": 0, "low": 4},
        shed=2,
        rejection_rate=0.2353,
        status=LoadStatus.HEALTHY,
    )
    state = RouterState(
        endpoints=endpoints,
        preferred_endpoint=endpoints[0].name if endpoints else None,
        highest_slot=100,
        all_breakers_open=False,
        queued=1,
        backpressure=stats,
    )
    return state.to_json()


def child(child_id: str, path: str, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": child_id,
        "path": path,
        "kind": "worker",
        "restart": "permanent",
        "state": "running",
        "restart_count": 0,
        "last_failure": None,
        "last_failure_at": None,
        "mailbox_size": 0,
        "buffered": 0,
    }
    fields.update(changes)
    return fields


def status(**changes: Any) -> dict[str, Any]:
    settle = child("settle", "node/pipeline/settle", restart_count=1, mailbox_size=4)
    pipeline = child("pipeline", "node/pipeline", kind="supervisor")
    pipeline["tree"] = {"name": "node/pipeline", "children": [settle]}
    document: dict[str, Any] = {
        "node_id": "node-a",
        "started_at": 1_700_000_000.0,
        "uptime_s": 3725.4,
        "tree": {
            "name": "node",
            "children": [
                child("locks", "node/locks"),
                child(
                    "rpc",
                    "node/rpc",
                    restart_count=2,
                    last_failure="RuntimeError('boom\\nsecond line')",
                    mailbox_size=7,
                ),
                pipeline,
            ],
        },
        "rpc": router(endpoint("primary"), endpoint("backup", breaker="open", latency_ms=None)),
        "leases": {
            "held": [
                {
                    "key": "market:m1",
                    "market": "m1",
                    "fencing_token": 12,
                    "expires_at": "2030-01-01T00:00:15+00:00",
                },
            ],
            "markets_gained_total": 3,
            "markets_lost_total": 2,
        },
        "blockhash": {"blockhash": "abc", "age_s": 1.5},
        "settlements_in_flight": 4,
        "pipeline": {
            "settlement": {"in_flight": 4, "full": False, "confirmed": 120, "failed": 1},
            "match": {"markets": [{"market_id": "m0"}, {"market_id": "m1"}]},
            "monitor": {"error": "TimeoutError()"},
        },
    }
    document.update(changes)
    return document
