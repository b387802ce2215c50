"""Retention: delete finished history and completed operations past their age.

Run at start and periodically (the caller's timer decides how often). Ages
are measured on the database's clock against ``updated_at``, the time a row
reached its final status.
"""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger
from sqlalchemy import delete
from sqlalchemy.engine import Engine

from storage.clock import db_now
from storage.engine import write_transaction
from storage.models import PendingOperation, TransactionHistory

__all__ = ["RetentionPolicy", "RetentionReport", "prune"]

_DAY_S = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    """How long finished rows are kept, in days."""

    history_days: float = 30.0
    completed_operations_days: float = 7.0

    def __post_init__(self) -> None:
        for name in ("history_days", "completed_operations_days"):
            if not getattr(self, name) > 0:
                raise ValueError(f"retention {name} must be positive, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class RetentionReport:
    """How many rows one pass deleted."""

    history_deleted: int
    operations_deleted: int


def prune(
    engine: Engine, policy: RetentionPolicy | None = None, *, clock_offset_s: float = 0.0
) -> RetentionReport:
    """Delete confirmed/failed history and completed operations older than ``policy`` says."""
    policy = policy or RetentionPolicy()
    history_cutoff = db_now(clock_offset_s - policy.history_days * _DAY_S)
    operations_cutoff = db_now(clock_offset_s - policy.completed_operations_days * _DAY_S)
    old_history = delete(TransactionHistory).where(
        TransactionHistory.status.in_(("confirmed", "failed")),
        TransactionHistory.updated_at < history_cutoff,
    )
    old_operations = delete(PendingOperation).where(
        PendingOperation.status == "completed", PendingOperation.updated_at < operations_cutoff
    )
    with write_transaction(engine, "storage.retention") as connection:
        report = RetentionReport(
            connection.execute(old_history).rowcount, connection.execute(old_operations).rowcount
        )
    logger.bind(
        action="storage.retention_pruned",
        history_deleted=report.history_deleted,
        operations_deleted=report.operations_deleted,
    ).info("retention pass done")
    return report
