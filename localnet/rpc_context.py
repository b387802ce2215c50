"""What one JSON-RPC request may see: the ledger, as of one moment, through one endpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from solders.account import Account
from solders.rpc.responses import RpcResponseContext

from localnet.commitment import ChainTip
from localnet.ledger import Ledger
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Config, Params

__all__ = ["API_VERSION", "RpcContext", "RpcMethod", "account_view", "response_context"]

# The Agave version localnet answers as; getVersion and every context report it.
API_VERSION = "2.2.0"


@dataclass(frozen=True)
class RpcContext:
    """The ledger and the chain tip this request reads, and the endpoint's send faults."""

    ledger: Ledger
    tip: ChainTip
    lag_slots: int = 0
    drop_sends: bool = False
    late_landing_blocks: int = 0
    prune_history_slots: int = 0
    drop_notifications: float = 0.0  # the share of PubSub notifications never sent

    def forgot(self, landed_slot: int) -> bool:
        """True if this endpoint's history no longer holds a transaction of ``landed_slot``."""
        return landed_slot < self.oldest_history_slot

    @property
    def oldest_history_slot(self) -> int:
        """The oldest slot whose transactions this endpoint still remembers."""
        if not self.prune_history_slots:
            return self.ledger.config.genesis_slot
        return self.tip.processed_slot - self.prune_history_slots

    def check_health(self) -> None:
        """Raise -32005 if this endpoint lags past the health-check distance."""
        if self.lag_slots > self.ledger.config.health_check_slot_distance:
            raise RpcError.node_behind(self.lag_slots)


RpcMethod = Callable[[RpcContext, Params], Any]


def response_context(slot: int) -> RpcResponseContext:
    return RpcResponseContext(slot, API_VERSION)


def account_view(account: Account | None, config: Config) -> Account | None:
    """``account`` as the request asked to see it: base64, optionally sliced.

    Solana's default without "encoding" is legacy base58; localnet answers base64
    (solders' account type serializes only that), which every current client asks for.
    """
    config.enum("encoding", ("base64",), "base64")
    if account is None:
        return None
    data_slice = config.get("dataSlice")
    if data_slice is None:
        return account
    offset, length = _slice_bounds(data_slice)
    data = bytes(account.data)[offset : offset + length]
    return Account(account.lamports, data, account.owner, account.executable, account.rent_epoch)


def _slice_bounds(data_slice: Any) -> tuple[int, int]:
    if not isinstance(data_slice, dict):
        raise RpcError.invalid_params("Invalid params: dataSlice must be an object.")
    offset, length = data_slice.get("offset"), data_slice.get("length")
    if not isinstance(offset, int) or not isinstance(length, int) or min(offset, length) < 0:
        raise RpcError.invalid_params("Invalid params: dataSlice needs offset and length >= 0.")
    return offset, length
