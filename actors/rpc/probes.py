"""Active health probes: getHealth and getSlot, judged together.

A probe passes when getHealth answers "ok" and getSlot answers a slot that
is not stale; its verdict (not each call's) is what the breaker records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from actors.rpc.classify import AttemptError, ErrorKind, RpcAnswer

__all__ = ["PROBE_COMMITMENT", "ProbeRound", "probe_payloads"]

PROBE_COMMITMENT = "confirmed"
HEALTH = "getHealth"
SLOT = "getSlot"


def probe_payloads() -> dict[str, bytes]:
    """The JSON-RPC bodies of one probe, by method."""
    calls: dict[str, list[Any]] = {HEALTH: [], SLOT: [{"commitment": PROBE_COMMITMENT}]}
    return {
        method: json.dumps(
            {"jsonrpc": "2.0", "id": f"probe-{method}", "method": method, "params": params},
            separators=(",", ":"),
        ).encode()
        for method, params in calls.items()
    }


@dataclass
class ProbeRound:
    """One probe of one endpoint, until both calls are in."""

    pending: int = 2
    error: AttemptError | None = None
    slot: int | None = None

    def add(self, method: str, verdict: RpcAnswer | AttemptError) -> bool:
        """Record one call's verdict; True once the round is complete."""
        self.pending -= 1
        if isinstance(verdict, AttemptError):
            self.error = self.error or verdict
        elif method == SLOT:
            result = verdict.result
            if isinstance(result, int) and not isinstance(result, bool):
                self.slot = result
            else:
                self.error = self.error or _bad(f"getSlot answered {result!r:.80}")
        elif verdict.result != "ok":
            self.error = self.error or _bad(f"getHealth answered {verdict.result!r:.80}")
        return self.pending == 0


def _bad(message: str) -> AttemptError:
    return AttemptError(ErrorKind.BAD_RESPONSE, message, retryable=True, endpoint_fault=True)
