"""The node's pipeline: SettlementActor, MatchActor, OrderMonitor and MarkerReclaimActor.

    OrderMonitor --OrderAdded/OrderRemoved--> MatchActor --SettlementsPending--> SettlementActor
                                              MatchActor <--SettlementBacklog--  SettlementActor
    LockActor --MarketsChanged/LeaseLost--> MatchActor, OrderMonitor, MarkerReclaimActor

MarkerReclaimActor needs nothing from the others: it reads confirmed settlements
from the database and gives their markers' rent back under the market leases.

Every address is a child spec's :class:`~supervision.ActorHandle`, so messages
reach whichever instance runs now, across restarts. The pipeline supervisor
is one_for_one: each actor recovers its own state from the database (and asks
the LockActor for the markets again) when restarted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from loguru import logger
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

from actors.marker_reclaim import GetReclaimState, MarkerReclaimActor
from actors.match_actor import GetMatchState, MatchActor
from actors.order_monitor import GetMonitorState, OrderMonitor, OrdersStored
from actors.settlement import (
    Drain,
    GetSettlementState,
    SettlementActor,
    SettlementState,
    signer_map,
)
from crank_node.node.settings import CrankSettings
from storage import StoredOrder
from supervision import ActorHandle, ChildSpec, RemoveChild

__all__ = ["PipelineParts", "pipeline_specs"]

ASK_TIMEOUT_S = 2.0
STOP_WAIT_S = 30.0


@dataclass(frozen=True)
class PipelineParts:
    """The pipeline's child specs (in start order) and how the node stops it."""

    settlement: ChildSpec
    match: ChildSpec
    monitor: ChildSpec
    reclaim: ChildSpec

    @property
    def specs(self) -> tuple[ChildSpec, ...]:
        return (self.settlement, self.match, self.monitor, self.reclaim)

    @property
    def market_listeners(self) -> tuple[ActorHandle, ...]:
        """Who the LockActor tells which markets this node holds."""
        return (self.match.handle, self.monitor.handle, self.reclaim.handle)

    def order_stored(self, stored: StoredOrder) -> None:
        """An intake listener: OrderMonitor reads the order's market soon (OrdersStored)."""
        self.orders_changed(stored.order.market_id)

    def orders_changed(self, market_id: str) -> None:
        """An intake listener (orders stored, orders cancelled): OrderMonitor reads the
        market soon (OrdersStored), and tells MatchActor of new orders and of those gone."""
        self.monitor.handle.tell(OrdersStored(market_id))

    def finish_matching(self, pipeline: ActorHandle) -> None:
        """No new orders reach the books (OrderMonitor stops), MatchActor handles what
        it was told already (an ask queues behind it), then stops."""
        pipeline.ask(RemoveChild("monitor")).get(timeout=STOP_WAIT_S)
        self.match.handle.ask(GetMatchState()).get(timeout=STOP_WAIT_S)
        pipeline.ask(RemoveChild("match")).get(timeout=STOP_WAIT_S)

    def drain(self, hurry: threading.Event) -> dict[str, int]:
        """Wait until SettlementActor holds nothing, or ``hurry`` is set; what it still
        holds is left for recovery (released when it stops)."""
        drained = threading.Event()
        handle = self.settlement.handle
        before = self._settlement_state()
        handle.tell(Drain(lambda _left: drained.set()))
        while not drained.wait(0.05) and not hurry.is_set():
            pass  # bounded by the phase's timeout; each wait is an event wait
        after = self._settlement_state()
        report = {
            "in_flight_at_stop": before.in_flight if before else -1,
            "drained": (after.confirmed + after.failed) - (before.confirmed + before.failed)
            if before and after
            else 0,
            "left_for_recovery": after.in_flight if after else -1,
        }
        logger.bind(action="node.drained", **report, hurried=hurry.is_set()).info(
            f"settlements drained: {report['drained']}, left for recovery: "
            f"{report['left_for_recovery']}"
        )
        return report

    def _settlement_state(self) -> SettlementState | None:
        try:
            state: SettlementState = self.settlement.handle.ask(GetSettlementState()).get(
                timeout=ASK_TIMEOUT_S
            )
        except Exception:  # noqa: BLE001  (a state that cannot be had is reported as unknown)
            return None
        return state

    def status(self) -> dict[str, Any]:
        """Each pipeline actor's state, or its error, for /status."""
        return {
            "settlement": _asked(self.settlement.handle, GetSettlementState()),
            "match": _asked(self.match.handle, GetMatchState()),
            "monitor": _asked(self.monitor.handle, GetMonitorState()),
            "reclaim": _asked(self.reclaim.handle, GetReclaimState()),
        }


def _asked(handle: ActorHandle, question: Any) -> dict[str, Any]:
    try:
        answer = handle.ask(question).get(timeout=ASK_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001  (an actor that does not answer is reported)
        return {"error": repr(error)}
    return asdict(answer)


def pipeline_specs(
    settings: CrankSettings,
    engine: Engine,
    signers: Sequence[Keypair],
    *,
    locks: ActorHandle,
    rpc: ActorHandle,
    blockhash: ActorHandle,
    listeners: Sequence[Callable[[Any], None]] = (),
    chain_cut_for_s: Callable[[], float] = lambda: 0.0,
) -> PipelineParts:
    """The pipeline's child specs, each built from ``settings``."""
    settlement_settings = settings.settlement_settings()
    keys = signer_map(*signers)
    poll_interval_s = settings.polling_interval_ms / 1000
    wakeup_interval_s = settings.intake_wakeup_ms / 1000 if settings.intake_wakeup_ms else None
    node_id = settings.instance_id
    specs: dict[str, ChildSpec] = {}
    specs["settlement"] = ChildSpec(
        id="settlement",
        factory=lambda: SettlementActor(
            engine,
            rpc,
            blockhash,
            keys,
            node_id=node_id,
            match_sink=specs["match"].handle,
            settings=settlement_settings,
            listeners=listeners,
            chain_cut_for_s=chain_cut_for_s,
        ),
        shutdown_timeout_s=15.0,
    )
    specs["match"] = ChildSpec(
        id="match",
        factory=lambda: MatchActor(
            engine, lock=locks, settlement_sink=specs["settlement"].handle, name="match"
        ),
        shutdown_timeout_s=15.0,
    )
    specs["monitor"] = ChildSpec(
        id="monitor",
        factory=lambda: OrderMonitor(
            engine,
            rpc,
            specs["match"].handle,
            lock=locks,
            poll_interval_s=poll_interval_s,
            wakeup_interval_s=wakeup_interval_s,
            # On PostgreSQL, woken by what other nodes store or cancel too (their notices).
            order_feed=True,
            name="monitor",
        ),
    )
    specs["reclaim"] = ChildSpec(
        id="reclaim",
        factory=lambda: MarkerReclaimActor(engine, rpc, blockhash, keys, lock=locks),
    )
    return PipelineParts(specs["settlement"], specs["match"], specs["monitor"], specs["reclaim"])
