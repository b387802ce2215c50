"""supervision.journeys: a journey from JSON log lines, pure (no files)."""

from __future__ import annotations

import json
from typing import Any

from supervision.journeys import JourneyQuery, follow, format_journey
from supervision.tracing import domain_keys, journey_fields


def _line(at: float, action: str, **fields: Any) -> tuple[str, str]:
    return "node-1", json.dumps({"time": at, "action": action, "message": action, **fields})


def test_an_order_stuck_on_funding_says_what_it_waits_for() -> None:
    """Accepted, then judged unfunded: the state says "waiting for funding" and why."""
    lines = [
        _line(1.0, "intake.order_accepted", order_id="A", size_atoms=5, price_atoms=1),
        _line(
            1.5,
            "order_monitor.order_unfunded",
            order_id="A",
            problem="delegated amount 0 < 5,000,000 owed",
        ),
        _line(1.6, "intake.order_accepted", order_id="B", size_atoms=5, price_atoms=1),
    ]
    output = format_journey(follow(lines, JourneyQuery(order="A")))
    assert "state: waiting for funding: delegated amount 0 < 5,000,000 owed" in output
    assert "B" not in output.replace("UTC", "")


def test_a_fill_journey_keeps_its_orders_acceptance_but_not_their_other_fills() -> None:
    """--fill F: both orders' acceptance, F's steps (attempt found through the paired
    settlement/signature lists), and not the other fill G of the same maker."""
    lines = [
        _line(1.0, "intake.order_accepted", order_id="M"),
        _line(2.0, "intake.order_accepted", order_id="T"),
        _line(
            3.0,
            "match.fill_written",
            order_ids=["M", "T"],
            fill_ids=["F"],
            maker_order_id="M",
            taker_order_id="T",
        ),
        _line(
            3.1,
            "match.fill_written",
            order_ids=["M", "U"],
            fill_ids=["G"],
            maker_order_id="M",
            taker_order_id="U",
        ),
        _line(
            4.0,
            "storage.attempts_recorded",
            settlement_ids=["G", "F"],
            signatures=["sigG", "sigF"],
            attempt_numbers=[1, 1],
        ),
        _line(
            5.0,
            "storage.settlements_confirmed",
            settlement_ids=["F"],
            signatures=["sigF"],
            slots=[9],
        ),
    ]
    entries = follow(lines, JourneyQuery(fill="F"))
    output = format_journey(entries)
    assert [e.at for e in entries] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert "sigF at slot 9" in output
    assert "sigG" not in output and "fill G" not in output


def test_trace_lines_name_at_most_32_ids_of_a_kind_and_count_them_all() -> None:
    """A message with 40 fills: its trace line fields carry the first 32 and the count 40."""

    class Batch:
        def trace_keys(self) -> dict[str, tuple[str, ...]]:
            return {"fill": tuple(f"f{i}" for i in range(40))}

    fields = journey_fields(domain_keys(Batch()))
    assert fields["fill_count"] == 40
    assert fields["fill_ids"] == [f"f{i}" for i in range(32)]
    assert domain_keys(object()) == {}


def test_a_settlement_journey_takes_the_id_less_hops_of_its_own_trace_not_of_a_batch() -> None:
    """--settlement F: the trace lines naming no id (an RPC request and its reply) are in
    the journey when they run under a trace of F's own steps (claimed, sent, on either
    node), not under the trace of a batch line that also names another settlement, and
    never under an unrelated trace."""
    lines = [
        _line(1.0, "settlement.claimed", settlement_id="F", settlement_ids=["F"], trace_id="t-F"),
        _line(2.0, "settlement.sent", settlement_id="F", signature="sigF", trace_id="t-F"),
        _line(
            2.1,
            "trace.send",
            trace_id="t-F",
            sender="settlement",
            receiver="rpc",
            message_type="RpcRequest",
        ),
        (
            "node-2",
            json.dumps(
                {
                    "time": 2.2,
                    "action": "trace.receive",
                    "trace_id": "t-F",
                    "sender": "rpc",
                    "receiver": "settlement",
                    "message_type": "_Sent",
                }
            ),
        ),
        _line(
            3.0,
            "storage.attempts_recorded",
            settlement_ids=["F", "G"],
            signatures=["sigF", "sigG"],
            trace_id="t-batch",
        ),
        _line(
            3.1,
            "trace.receive",
            trace_id="t-batch",
            sender="blockhash",
            receiver="settlement",
            message_type="_Blockhash",
        ),
        _line(
            4.0,
            "trace.send",
            trace_id="t-other",
            sender="settlement",
            receiver="rpc",
            message_type="RpcRequest",
        ),
    ]
    entries = follow(lines, JourneyQuery(settlement="F"))
    assert [(e.at, e.source) for e in entries] == [
        (1.0, "node-1"),
        (2.0, "node-1"),
        (2.1, "node-1"),
        (2.2, "node-2"),
        (3.0, "node-1"),
    ]
