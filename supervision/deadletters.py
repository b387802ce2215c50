"""Dead letters: messages that reached no actor are logged and counted, never lost silently."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pykka
from loguru import logger
from pykka._envelope import Envelope

from supervision.tracing import Delivery, format_trace_id, unlogged_send

__all__ = ["DEAD_LETTERS", "DeadLetters"]


class DeadLetters:
    """A sink for undeliverable messages: one warning line each, and counts
    per receiver for introspection. An *ask* among them gets
    ``pykka.ActorDeadError`` so its caller never waits forever."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def publish(self, envelope: Envelope[Any], receiver: str, reason: str) -> None:
        delivery = envelope.message
        message = delivery.message if isinstance(delivery, Delivery) else delivery
        trace_id = None
        if isinstance(delivery, Delivery):
            trace_id = format_trace_id(delivery.trace_id)
            unlogged_send(delivery, receiver, "dead_letter")
        with self._lock:
            self._counts[receiver] += 1
        logger.bind(
            action="actor.dead_letter",
            receiver=receiver,
            message_type=type(message).__name__,
            trace_id=trace_id,
            reason=reason,
        ).warning(f"dead letter to {receiver}: {type(message).__name__} ({reason})")
        if envelope.reply_to is not None:
            error = pykka.ActorDeadError(f"{receiver} is not running: {reason}")
            envelope.reply_to.set_exception((type(error), error, None))

    def count(self, receiver: str | None = None) -> int:
        with self._lock:
            return self._counts[receiver] if receiver else sum(self._counts.values())

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


DEAD_LETTERS = DeadLetters()
"""The process-wide dead-letter sink."""
