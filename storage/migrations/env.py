"""Alembic environment: migrate the connection storage.schema passes in.

Frozen revision scripts must not import the models' custom types, so
autogenerate renders them as the plain types they store.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext

from storage.models import Base
from storage.types import U64, UtcDateTime


def render_item(type_: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    if type_ == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(item, U64):
        return 'sa.Numeric(20, 0).with_variant(sa.String(20), "sqlite")'
    return False


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through storage.schema, which passes a connection")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_item=render_item,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
