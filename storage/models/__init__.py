"""SQLAlchemy models of every crank-node table."""

from storage.models.base import Base, Timestamped, table_of
from storage.models.chain_cache import OrderStateCache
from storage.models.claimable import Claimable
from storage.models.coordination import NODE_STATES, DistributedLock, FencingSequence, Node
from storage.models.operations import OPERATION_STATUSES, PendingOperation
from storage.models.quarantine import (
    QUARANTINE_KINDS,
    QUARANTINE_STATUSES,
    InputFailure,
    QuarantinedRow,
)
from storage.models.settlement import (
    ATTEMPT_STATES,
    MARKER_STATES,
    SETTLEMENT_STATUSES,
    TRANSACTION_STATUSES,
    TRANSACTION_TYPES,
    Settlement,
    SettlementAttempt,
    SettlementMarker,
    TransactionHistory,
)
from storage.models.trading import (
    MARKET_STATUSES,
    ORDER_SIDES,
    ORDER_STATUSES,
    Fill,
    Market,
    Order,
)

__all__ = [
    "ATTEMPT_STATES",
    "MARKER_STATES",
    "MARKET_STATUSES",
    "NODE_STATES",
    "OPERATION_STATUSES",
    "ORDER_SIDES",
    "ORDER_STATUSES",
    "QUARANTINE_KINDS",
    "QUARANTINE_STATUSES",
    "SETTLEMENT_STATUSES",
    "TRANSACTION_STATUSES",
    "TRANSACTION_TYPES",
    "Base",
    "Claimable",
    "DistributedLock",
    "FencingSequence",
    "Fill",
    "InputFailure",
    "Market",
    "Node",
    "Order",
    "OrderStateCache",
    "PendingOperation",
    "QuarantinedRow",
    "Settlement",
    "SettlementAttempt",
    "SettlementMarker",
    "Timestamped",
    "TransactionHistory",
    "table_of",
]
