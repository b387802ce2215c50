"""Reading the chain independently of our database: which fills were settled, how often.

The audit lives in the package (:mod:`localnet.audit`), where `crank-node chaos`
uses it too; the tests import it from here, by the names they always used.
"""

from __future__ import annotations

from localnet.audit import (
    ChainSettlements,
    scan_settlements,
    settled_fill_ids,
    signature_status_exists,
)

__all__ = ["ChainSettlements", "scan_settlements", "settled_fill_ids", "signature_status_exists"]
