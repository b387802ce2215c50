"""SQLAlchemy models of every crank-node table."""

from storage.models.base import Base, Timestamped, table_of
from storage.models.chain_cache import OrderStateCache
from storage.models.claimable import Claimable
from storage.models.coordination import NODE_STATES, DistributedLock, FencingSequence, Node
from storage.models.operations import OPERATION_STATUSES, PendingOperation
from storage.models.settlement import (
    ATTEMPT_STATES,
    SETTLEMENT_STATUSES,
    TRANSACTION_STATUSES,
    TRANSACTION_TYPES,
    Settlement,
    SettlementAttempt,
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
    "MARKET_STATUSES",
    "NODE_STATES",
    "OPERATION_STATUSES",
    "ORDER_SIDES",
    "ORDER_STATUSES",
    "SETTLEMENT_STATUSES",
    "TRANSACTION_STATUSES",
    "TRANSACTION_TYPES",
    "Base",
    "Claimable",
    "DistributedLock",
    "FencingSequence",
    "Fill",
    "Market",
    "Node",
    "Order",
    "OrderStateCache",
    "PendingOperation",
    "Settlement",
    "SettlementAttempt",
    "Timestamped",
    "TransactionHistory",
    "table_of",
]
