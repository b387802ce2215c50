"""The shared database: models, migrations, engines, leases with fencing, work claims.

Nothing outside this package sees a driver exception: every database error
comes out as one of :mod:`storage.errors`.
"""

from storage.claims import Claim, ClaimedWriter, ClaimQueue
from storage.clock import db_now, read_db_now
from storage.engine import open_engine, read_transaction, write_transaction
from storage.errors import (
    ClaimLost,
    DatabaseBusy,
    DatabaseUnavailable,
    IntegrityViolation,
    InvalidDatabaseUrl,
    LeaseLost,
    NetworkFilesystemRefused,
    SchemaOutdated,
    SchemaTooNew,
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
from storage.fencing import Fence, fenced_execute, fenced_insert, lease_is_held
from storage.leases import Lease, LeaseStore
from storage.netfs import check_local_filesystem
from storage.nodes import NodeRecord, NodeRegistry
from storage.queues import (
    OPERATION_CLAIM_SET,
    complete_operation,
    enqueue_operation,
    operation_queue,
    retry_operation,
    settlement_queue,
)
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
from storage.urls import resolve_database_url, sqlite_url

__all__ = [
    "MARKET_KEY_PREFIX",
    "OPERATION_CLAIM_SET",
    "UPGRADE_COMMAND",
    "Claim",
    "ClaimLost",
    "ClaimQueue",
    "ClaimedWriter",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "Fence",
    "IntegrityViolation",
    "InvalidDatabaseUrl",
    "Lease",
    "LeaseLost",
    "LeaseStore",
    "NetworkFilesystemRefused",
    "NodeRecord",
    "NodeRegistry",
    "RebalancePlan",
    "RetentionPolicy",
    "RetentionReport",
    "Revision",
    "SchemaOutdated",
    "SchemaTooNew",
    "StorageError",
    "WriteConflict",
    "check_local_filesystem",
    "check_schema",
    "complete_operation",
    "current_revision",
    "db_now",
    "downgrade",
    "enqueue_operation",
    "fair_share",
    "fenced_execute",
    "fenced_insert",
    "head_revision",
    "history",
    "lease_is_held",
    "market_id",
    "market_key",
    "open_engine",
    "operation_queue",
    "plan_rebalance",
    "prune",
    "read_db_now",
    "read_transaction",
    "resolve_database_url",
    "retry_operation",
    "settlement_queue",
    "sqlite_url",
    "upgrade",
    "write_transaction",
]
