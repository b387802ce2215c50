"""PubSub subscriptions: what each one notifies, given the chain as an endpoint sees it.

Each subscription is polled after slots are produced (or fixtures land) with
the endpoint's current :class:`RpcContext`, so a lagging endpoint notifies
late, as a lagging node would. ``poll`` returns the ``result`` members of the
notifications due, oldest first; ``finished`` says the subscription ended by
itself (a signature subscription after its notification), as in Agave.

The notification shapes follow Agave's ``rpc_subscriptions`` (and are what
@solana/web3.js's ``SignatureNotificationResult``, ``SlotNotificationResult``,
``AccountNotificationResult``, ``LogsNotificationResult`` and
``RootNotificationResult`` validate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from solders.account import Account
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from localnet.commitment import Commitment
from localnet.rpc_accounts import DataFilter, matches_filters, parse_filters
from localnet.rpc_context import RpcContext, account_view
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Config, Params, parse_pubkey
from localnet.rpc_tokens import JSON_PARSED, account_json
from localnet.tx_errors import transaction_error_json

__all__ = ["SUBSCRIBE_METHODS", "UNSUBSCRIBE_METHODS", "Subscription"]

# A subscriber that fell far behind (a long lag healed) is not replayed every slot.
MAX_CATCH_UP_SLOTS: Final = 512


@dataclass
class Subscription:
    """Base: the slots this subscription has already looked at, at its commitment."""

    kind: str  # the notification method, e.g. "signatureNotification"
    commitment: Commitment
    seen_slot: int
    finished: bool = False

    def poll(self, context: RpcContext) -> list[Any]:
        target = context.tip.slot(self.commitment)
        if target <= self.seen_slot:
            return []
        first = max(self.seen_slot + 1, target - MAX_CATCH_UP_SLOTS + 1)
        self.seen_slot = target
        return self.notify(context, first, target)

    def notify(self, context: RpcContext, first: int, last: int) -> list[Any]:
        raise NotImplementedError


def _with_context(slot: int, value: Any) -> dict[str, Any]:
    return {"context": {"slot": slot}, "value": value}


@dataclass
class SignatureSubscription(Subscription):
    signature: Signature = field(default_factory=Signature.default)
    received: bool = False  # enableReceivedNotification asked, not yet sent

    def poll(self, context: RpcContext) -> list[Any]:
        notes: list[Any] = []
        landed = context.ledger.landed(self.signature)
        tip = context.tip
        visible = landed is not None and landed.slot <= tip.processed_slot
        if self.received and (visible or context.ledger.is_pending(self.signature)):
            self.received = False
            notes.append(_with_context(tip.processed_slot, "receivedSignature"))
        if landed is not None and visible:
            reached = tip.status_of(landed.slot)
            if reached is not None and reached >= self.commitment:
                self.finished = True
                err = None if landed.err is None else transaction_error_json(landed.err)
                notes.append(_with_context(tip.slot(self.commitment), {"err": err}))
        return notes


@dataclass
class SlotSubscription(Subscription):
    def notify(self, context: RpcContext, first: int, last: int) -> list[Any]:
        root = context.tip.finalized_slot
        return [
            {"parent": max(slot - 1, 0), "root": min(root, slot), "slot": slot}
            for slot in range(first, last + 1)
        ]


@dataclass
class RootSubscription(Subscription):
    def notify(self, context: RpcContext, first: int, last: int) -> list[Any]:
        return list(range(first, last + 1))


@dataclass
class SlotsUpdatesSubscription(Subscription):
    """Agave's ``SlotUpdate`` stream: each slot's bank created and frozen (with its
    transaction stats), then optimistically confirmed, then rooted."""

    seen_confirmed: int = 0
    seen_root: int = 0

    def notify(self, context: RpcContext, first: int, last: int) -> list[Any]:
        now_ms = int(time.time() * 1000)
        notes: list[Any] = []
        for slot in range(first, last + 1):
            landed = context.ledger.landed_in_slot(slot)
            failed = sum(1 for item in landed if item.err is not None)
            stats = {
                "numTransactionEntries": len(landed),
                "numSuccessfulTransactions": len(landed) - failed,
                "numFailedTransactions": failed,
                "maxTransactionsPerEntry": 1 if landed else 0,
            }
            notes.append(
                {
                    "type": "createdBank",
                    "slot": slot,
                    "parent": max(slot - 1, 0),
                    "timestamp": now_ms,
                }
            )
            notes.append({"type": "frozen", "slot": slot, "timestamp": now_ms, "stats": stats})
        confirmed, root = context.tip.confirmed_slot, context.tip.finalized_slot
        for slot in _newer(self.seen_confirmed, confirmed):
            notes.append({"type": "optimisticConfirmation", "slot": slot, "timestamp": now_ms})
        for slot in _newer(self.seen_root, root):
            notes.append({"type": "root", "slot": slot, "timestamp": now_ms})
        self.seen_confirmed = max(self.seen_confirmed, confirmed)
        self.seen_root = max(self.seen_root, root)
        return notes


def _newer(seen: int, reached: int) -> range:
    return range(max(seen + 1, reached - MAX_CATCH_UP_SLOTS + 1), reached + 1)


@dataclass
class LogsSubscription(Subscription):
    mentions: Pubkey | None = None

    def notify(self, context: RpcContext, first: int, last: int) -> list[Any]:
        notes: list[Any] = []
        for slot in range(first, last + 1):
            for landed in context.ledger.landed_in_slot(slot):
                if self.mentions is not None and self.mentions not in landed.account_keys:
                    continue
                err = None if landed.err is None else transaction_error_json(landed.err)
                value = {"signature": str(landed.signature), "err": err, "logs": list(landed.logs)}
                notes.append(_with_context(slot, value))
        return notes


@dataclass
class AccountSubscription(Subscription):
    address: Pubkey = field(default_factory=Pubkey.default)
    config: Config = field(default_factory=lambda: Config({}))
    last: Account | None = None

    def notify(self, context: RpcContext, first: int, last: int) -> list[Any]:
        now = context.ledger.account(self.address, last)
        if now == self.last:
            return []
        self.last = now
        return [_with_context(last, _account_json(now, self.config, last, context))]


@dataclass
class ProgramSubscription(Subscription):
    program_id: Pubkey = field(default_factory=Pubkey.default)
    config: Config = field(default_factory=lambda: Config({}))
    filters: list[DataFilter] = field(default_factory=list)

    def notify(self, context: RpcContext, first: int, last: int) -> list[Any]:
        written: dict[Pubkey, None] = {}
        for slot in range(first, last + 1):
            for landed in context.ledger.landed_in_slot(slot):
                written.update(
                    dict.fromkeys(key for key in landed.account_keys if key in landed.writable_keys)
                )
        notes: list[Any] = []
        for address in written:
            account = context.ledger.account(address, last)
            if account is None or account.owner != self.program_id:
                continue
            if not matches_filters(bytes(account.data), self.filters):
                continue
            shown = _account_json(account, self.config, last, context)
            value = {"pubkey": str(address), "account": shown}
            notes.append(_with_context(last, value))
        return notes


def _account_json(
    account: Account | None, config: Config, slot: int, context: RpcContext
) -> dict[str, Any] | None:
    """The account as getAccountInfo shows it (base64 or jsonParsed); a closed account as
    Agave notifies it: no lamports, no data, owned by the system program."""
    shown = account or Account(0, b"", SYSTEM_PROGRAM_ID, False, 0)
    return account_json(shown, config, slot, context.ledger.mint_decimals)


# --- subscribe requests ------------------------------------------------------------------


def _signature(context: RpcContext, params: Params) -> Subscription:
    signature = params.signature(0)
    config = params.config(1)
    commitment = config.commitment()
    return SignatureSubscription(
        "signatureNotification",
        commitment,
        context.tip.slot(commitment),
        signature=signature,
        received=config.flag("enableReceivedNotification"),
    )


def _slot(context: RpcContext, params: Params) -> Subscription:
    return SlotSubscription("slotNotification", Commitment.PROCESSED, context.tip.processed_slot)


def _slots_updates(context: RpcContext, params: Params) -> Subscription:
    tip = context.tip
    return SlotsUpdatesSubscription(
        "slotsUpdatesNotification",
        Commitment.PROCESSED,
        tip.processed_slot,
        seen_confirmed=tip.confirmed_slot,
        seen_root=tip.finalized_slot,
    )


def _root(context: RpcContext, params: Params) -> Subscription:
    return RootSubscription("rootNotification", Commitment.FINALIZED, context.tip.finalized_slot)


def _logs(context: RpcContext, params: Params) -> Subscription:
    raw = params.value(0)
    mentions = None
    if isinstance(raw, dict) and isinstance(raw.get("mentions"), list):
        if len(raw["mentions"]) != 1:
            raise RpcError.invalid_params(
                "Invalid Request: Only 1 address supported in `mentions` filter"
            )
        mentions = parse_pubkey(raw["mentions"][0])
    elif raw not in ("all", "allWithVotes"):
        raise RpcError.invalid_params(
            'Invalid params: expected `all`, `allWithVotes` or `{"mentions": [address]}`.'
        )
    commitment = params.config(1).commitment()
    return LogsSubscription(
        "logsNotification", commitment, context.tip.slot(commitment), mentions=mentions
    )


def _account(context: RpcContext, params: Params) -> Subscription:
    address = params.pubkey(0)
    config = params.config(1)
    commitment = config.commitment()
    slot = context.tip.slot(commitment)
    _check_encoding(config)
    return AccountSubscription(
        "accountNotification",
        commitment,
        slot,
        address=address,
        config=config,
        last=context.ledger.account(address, slot),
    )


def _program(context: RpcContext, params: Params) -> Subscription:
    program_id = params.pubkey(0)
    config = params.config(1)
    commitment = config.commitment()
    _check_encoding(config)
    return ProgramSubscription(
        "programNotification",
        commitment,
        context.tip.slot(commitment),
        program_id=program_id,
        config=config,
        filters=parse_filters(config.get("filters")),
    )


def _check_encoding(config: Config) -> None:
    """Refuses, at subscribe time, an encoding localnet does not serve."""
    if config.get("encoding") != JSON_PARSED:
        account_view(None, config)


SubscribeMethod = Any  # Callable[[RpcContext, Params], Subscription]

# name: (builder, required params, most params)
SUBSCRIBE_METHODS: Final[dict[str, tuple[SubscribeMethod, int, int]]] = {
    "signatureSubscribe": (_signature, 1, 2),
    "slotSubscribe": (_slot, 0, 0),
    "rootSubscribe": (_root, 0, 0),
    "slotsUpdatesSubscribe": (_slots_updates, 0, 0),
    "logsSubscribe": (_logs, 1, 2),
    "accountSubscribe": (_account, 1, 2),
    "programSubscribe": (_program, 1, 2),
}
UNSUBSCRIBE_METHODS: Final = frozenset(
    name.replace("Subscribe", "Unsubscribe") for name in SUBSCRIBE_METHODS
)
