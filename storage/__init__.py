"""The shared database: models, migrations, engines, leases with fencing, work claims,
and the repositories the matching pipeline calls (markets, orders, fills, settlements).

Nothing outside this package sees a driver exception: every database error
comes out as one of :mod:`storage.errors`.
"""

from storage.books import load_book
from storage.chain_cache import upsert_account_snapshots
from storage.claims import Claim, ClaimedWriter, ClaimQueue
from storage.clock import db_now, read_db_now
from storage.engine import open_engine, read_transaction, write_transaction
from storage.errors import (
    ClaimLost,
    DatabaseBusy,
    DatabaseUnavailable,
    DuplicateEntry,
    IntegrityViolation,
    InvalidDatabaseUrl,
    LeaseLost,
    NetworkFilesystemRefused,
    SchemaOutdated,
    SchemaTooNew,
    StateConflict,
    StorageError,
    WriteConflict,
)
from storage.fair_share import (
    MARKET_KEY_PREFIX,
    RebalancePlan,
    fair_share,
    market_id,
    market_key,
    plan_rebalance,
)
from storage.fencing import Fence, fenced_execute, fenced_insert, fenced_update, lease_is_held
from storage.fills import (
    MatchWrite,
    get_fill,
    list_fills,
    next_fill_sequence,
    record_match,
    record_match_result,
)
from storage.leases import Lease, LeaseStore
from storage.markets import get_market, insert_market, list_markets
from storage.netfs import check_local_filesystem
from storage.nodes import NodeRecord, NodeRegistry
from storage.orders import (
    StoredOrder,
    get_order,
    list_open_orders,
    mark_order_cancelled,
    mark_order_expired,
    mark_order_funded,
    mark_order_unfunded,
    set_order_status,
    store_order,
)
from storage.queues import (
    OPERATION_CLAIM_SET,
    complete_operation,
    enqueue_operation,
    operation_queue,
    retry_operation,
    settlement_queue,
)
from storage.reconciliation import expected_balance_changes
from storage.retention import RetentionPolicy, RetentionReport, prune
from storage.schema import (
    UPGRADE_COMMAND,
    Revision,
    check_schema,
    current_revision,
    downgrade,
    head_revision,
    history,
    upgrade,
)
from storage.settlements import (
    AttemptRecord,
    RecoveryCase,
    SettlementRecord,
    confirm_settlement,
    fail_settlement,
    get_settlement,
    list_attempts,
    mark_attempt,
    record_attempt,
    settlements_to_recover,
)
from storage.urls import resolve_database_url, sqlite_url

__all__ = [
    "MARKET_KEY_PREFIX",
    "OPERATION_CLAIM_SET",
    "UPGRADE_COMMAND",
    "AttemptRecord",
    "Claim",
    "ClaimLost",
    "ClaimQueue",
    "ClaimedWriter",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "DuplicateEntry",
    "Fence",
    "IntegrityViolation",
    "InvalidDatabaseUrl",
    "Lease",
    "LeaseLost",
    "LeaseStore",
    "MatchWrite",
    "NetworkFilesystemRefused",
    "NodeRecord",
    "NodeRegistry",
    "RebalancePlan",
    "RecoveryCase",
    "RetentionPolicy",
    "RetentionReport",
    "Revision",
    "SchemaOutdated",
    "SchemaTooNew",
    "SettlementRecord",
    "StateConflict",
    "StorageError",
    "StoredOrder",
    "WriteConflict",
    "check_local_filesystem",
    "check_schema",
    "complete_operation",
    "confirm_settlement",
    "current_revision",
    "db_now",
    "downgrade",
    "enqueue_operation",
    "expected_balance_changes",
    "fail_settlement",
    "fair_share",
    "fenced_execute",
    "fenced_insert",
    "fenced_update",
    "get_fill",
    "get_market",
    "get_order",
    "get_settlement",
    "head_revision",
    "history",
    "insert_market",
    "lease_is_held",
    "list_attempts",
    "list_fills",
    "list_markets",
    "list_open_orders",
    "load_book",
    "mark_attempt",
    "mark_order_cancelled",
    "mark_order_expired",
    "mark_order_funded",
    "mark_order_unfunded",
    "market_id",
    "market_key",
    "next_fill_sequence",
    "open_engine",
    "operation_queue",
    "plan_rebalance",
    "prune",
    "read_db_now",
    "read_transaction",
    "record_attempt",
    "record_match",
    "record_match_result",
    "resolve_database_url",
    "retry_operation",
    "set_order_status",
    "settlement_queue",
    "settlements_to_recover",
    "sqlite_url",
    "store_order",
    "upgrade",
    "upsert_account_snapshots",
    "write_transaction",
]
