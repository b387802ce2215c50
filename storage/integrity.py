"""A damaged SQLite file is refused at start.

A node on a file with a damaged page used to start, report healthy, and fail
every poll forever. ``PRAGMA quick_check`` (the O(N) variant of
``integrity_check``: pages, records and index order, not index contents) finds
such damage before anything runs. On a big file it could hold the start up, so
it is bounded in time: past ``timeout_s`` it is interrupted and the start goes
on, logged (the check could not finish, which is not a finding). PostgreSQL
keeps its own pages checked; nothing is done there.
"""

from __future__ import annotations

import time

from loguru import logger
from sqlalchemy.engine import Engine

from storage.errors import DatabaseCorrupt
from storage.translate import translated

__all__ = ["DEFAULT_INTEGRITY_TIMEOUT_S", "check_integrity"]

DEFAULT_INTEGRITY_TIMEOUT_S = 10.0
_PROGRESS_EVERY = 1000  # SQLite virtual-machine instructions between deadline checks
_MAX_FINDINGS = 5


def check_integrity(
    engine: Engine, *, timeout_s: float = DEFAULT_INTEGRITY_TIMEOUT_S
) -> bool | None:
    """True when SQLite's ``quick_check`` finds nothing, None when it could not finish
    within ``timeout_s`` (or the engine is not SQLite); raises DatabaseCorrupt naming
    the file and the first findings otherwise."""
    if engine.dialect.name != "sqlite":
        return None
    deadline = time.monotonic() + timeout_s
    with translated("storage.integrity_check"), engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_EVERY)
        try:
            rows = raw.execute(f"PRAGMA quick_check({_MAX_FINDINGS})").fetchall()
        except Exception as error:
            if "interrupt" in str(error).lower():
                logger.bind(action="storage.integrity_unfinished", timeout_s=timeout_s).warning(
                    f"the integrity check did not finish within {timeout_s} s; starting anyway"
                )
                return None
            raise DatabaseCorrupt(
                f"{engine.url.database}: PRAGMA quick_check could not read the file: {error}"
            ) from error
        finally:
            raw.set_progress_handler(None, 0)
    findings = [str(row[0]) for row in rows]
    if findings == ["ok"]:
        return True
    raise DatabaseCorrupt(
        f"{engine.url.database}: PRAGMA quick_check found damage: {'; '.join(findings)[:800]}. "
        "Restore it from a backup (or recover it with the sqlite3 shell's .recover); "
        "the node does not start on a damaged file"
    )
