"""Produces a slot every ``slot_ms`` on the event loop, like a cluster's leader schedule."""

from __future__ import annotations

import asyncio

from loguru import logger

from localnet.ledger import Ledger

__all__ = ["run_slot_timer"]


async def run_slot_timer(ledger: Ledger, slot_ms: int) -> None:
    """Advance ``ledger`` one slot per ``slot_ms`` until cancelled.

    Deadlines follow the loop's monotonic clock, so slots do not drift; after a
    stall longer than a slot, the schedule restarts from now instead of
    producing a burst of slots (a burst would expire blockhashes at once).
    """
    loop = asyncio.get_running_loop()
    interval_s = slot_ms / 1000.0
    deadline = loop.time() + interval_s
    logger.bind(action="localnet.slot_timer_started", slot_ms=slot_ms).debug("slot timer started")
    while True:
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        ledger.advance_slots(1)
        deadline += interval_s
        if loop.time() > deadline + interval_s:
            deadline = loop.time() + interval_s
