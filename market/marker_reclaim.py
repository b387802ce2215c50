"""The reclaim of settlement markers' rent: what to do with each marker, and the
transactions that close many at once. Pure: the chain's answers come in as values.

**One view, at ``finalized``.** Every decision combines two answers: the block
height (``getEpochInfo`` at ``finalized``: ``absoluteSlot`` and ``blockHeight``
read together, a :class:`FinalizedView`) and the marker accounts
(``getMultipleAccounts`` at ``finalized``, ``minContextSlot`` = that slot). The
accounts answer counts only when its context slot is at least the view's slot
(docs/ARCHITECTURE.md: "every 'no' must come from a view at least as recent as the 'past'
it is combined with"); an answer from behind decides nothing (:class:`Wait`).

**When.** A marker is closed only when :func:`market.marker.reclaimable` holds for
the ``last_valid_block_height`` of *every* attempt of its settlement at that
finalized height: closing it earlier would let a still-valid attempt land and
settle the fill a second time. Once that holds, the landing block (its height
is at most its attempt's ``last_valid_block_height``) is finalized too, so a
marker absent at that view is gone for good, not "not landed yet".

**Crash-safe.** The reclaim is written ahead (state ``reclaiming``, its
signature and ``last_valid_block_height``) before it is sent. A ``reclaiming``
marker absent at finalized was reclaimed (by that transaction or by an earlier
one of ours: either way its lamports came back once). Still present once the
finalized height is past the reclaim's ``last_valid_block_height``: that
transaction can no longer land on the finalized chain, and a new one is made
with a new blockhash. Two reclaims of one marker can never both move lamports:
the first takes all of them, and the account is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from market.marker import Marker, marker_for, marker_reclaim_instruction, reclaimable

__all__ = [
    "PACKET_DATA_SIZE",
    "Close",
    "FinalizedView",
    "Gone",
    "MarkerFacts",
    "ReclaimTransaction",
    "ReclaimVerdict",
    "Reclaimed",
    "Wait",
    "build_reclaim_transactions",
    "judge_marker",
    "parse_epoch_info",
    "parse_marker_accounts",
]

# The largest transaction the cluster takes (IPv6 MTU minus headers), in bytes.
PACKET_DATA_SIZE = 1232


@dataclass(frozen=True)
class FinalizedView:
    """The finalized block height, and the slot at which it was read (together)."""

    slot: int
    block_height: int


@dataclass(frozen=True)
class MarkerFacts:
    """What the database knows of one marker."""

    state: str  # open | reclaiming
    attempt_last_valid_block_heights: tuple[int, ...]  # of every attempt of its settlement
    reclaim_last_valid_block_height: int | None  # of the reclaim written ahead, if any


@dataclass(frozen=True)
class Wait:
    """Nothing to do now."""

    reason: str


@dataclass(frozen=True)
class Close:
    """Send a reclaim of all ``lamports`` (a first one, or again after the last expired)."""

    lamports: int


@dataclass(frozen=True)
class Reclaimed:
    """Our reclaim written ahead is done: the marker is gone at finalized."""


@dataclass(frozen=True)
class Gone:
    """The marker is gone at finalized though no reclaim of ours was written ahead for it."""


ReclaimVerdict = Wait | Close | Reclaimed | Gone


def judge_marker(
    facts: MarkerFacts, view: FinalizedView, accounts_slot: int, lamports: int | None
) -> ReclaimVerdict:
    """What to do with one marker, given the finalized view and the marker's account as
    read at finalized in an answer whose context slot is ``accounts_slot`` (``lamports``
    ``None``: no such account). See the module docstring for the rules."""
    if accounts_slot < view.slot:
        return Wait(f"the accounts answer is from slot {accounts_slot}, behind {view.slot}")
    if not reclaimable(facts.attempt_last_valid_block_heights, view.block_height):
        return Wait(f"an attempt may still land at finalized height {view.block_height}")
    if lamports is None:
        return Reclaimed() if facts.state == "reclaiming" else Gone()
    pending = facts.reclaim_last_valid_block_height
    if facts.state == "reclaiming" and pending is not None and view.block_height <= pending:
        return Wait(f"the reclaim sent is valid until height {pending}")
    return Close(lamports)


def parse_epoch_info(result: Any) -> FinalizedView:
    """``getEpochInfo``'s result as a view; ValueError names what is wrong."""
    if not isinstance(result, Mapping):
        raise ValueError(f"getEpochInfo result: expected an object, got {type(result).__name__}")
    slot, height = result.get("absoluteSlot"), result.get("blockHeight")
    for name, value in (("absoluteSlot", slot), ("blockHeight", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"getEpochInfo result: {name} must be a u64, got {value!r}")
    assert isinstance(slot, int) and isinstance(height, int)
    return FinalizedView(slot, height)


def parse_marker_accounts(
    addresses: Sequence[str], result: Any
) -> tuple[int, dict[str, int | None]]:
    """``getMultipleAccounts``' result: (its context slot, lamports by address, ``None``
    for an absent account); ValueError names what is wrong."""
    if not isinstance(result, Mapping):
        raise ValueError(f"getMultipleAccounts result: expected an object, got {result!r:.80}")
    context, value = result.get("context"), result.get("value")
    slot = context.get("slot") if isinstance(context, Mapping) else None
    if isinstance(slot, bool) or not isinstance(slot, int):
        raise ValueError(f"getMultipleAccounts result: context.slot must be a u64, got {slot!r}")
    if not isinstance(value, list) or len(value) != len(addresses):
        raise ValueError(f"getMultipleAccounts result: value must list {len(addresses)} accounts")
    found: dict[str, int | None] = {}
    for address, account in zip(addresses, value, strict=True):
        if account is None:
            found[address] = None
            continue
        lamports = account.get("lamports") if isinstance(account, Mapping) else None
        if isinstance(lamports, bool) or not isinstance(lamports, int) or lamports < 0:
            raise ValueError(f"getMultipleAccounts result: {address}.lamports is {lamports!r}")
        found[address] = lamports or None  # an account with 0 lamports does not exist
    return slot, found


@dataclass(frozen=True)
class ReclaimTransaction:
    """One signed reclaim: its signature, wire bytes, and the fills whose markers it
    closes with the lamports each gives back."""

    signature: str
    raw_bytes: bytes
    lamports_by_fill: tuple[tuple[str, int], ...]


def build_reclaim_transactions(
    closes: Sequence[tuple[str, str, int]],
    *,
    fee_payer: Keypair,
    settlement_authority: Keypair,
    recent_blockhash: Hash,
    max_bytes: int = PACKET_DATA_SIZE,
) -> list[ReclaimTransaction]:
    """Signed transactions that close ``closes`` ((fill id, marker address, lamports)),
    as many markers in each as fit in ``max_bytes``, lamports back to the fee payer.

    Raises ValueError naming the fill if an address is not the marker this authority
    derives for it (a wrong key or a wrong row must not send anything).
    """
    transactions: list[ReclaimTransaction] = []
    batch: list[tuple[str, Marker, int]] = []
    for fill_id, address, lamports in closes:
        marker = marker_for(settlement_authority, fill_id)
        if str(marker.address) != address:
            raise ValueError(
                f"marker of fill {fill_id}: the row says {address}, the authority "
                f"{settlement_authority.pubkey()} derives {marker.address}"
            )
        candidate = [*batch, (fill_id, marker, lamports)]
        built = _signed(candidate, fee_payer, settlement_authority, recent_blockhash)
        if len(built.raw_bytes) <= max_bytes:
            batch = candidate
            continue
        if not batch:
            raise ValueError(f"the reclaim of fill {fill_id} alone exceeds {max_bytes} bytes")
        transactions.append(_signed(batch, fee_payer, settlement_authority, recent_blockhash))
        batch = [(fill_id, marker, lamports)]
    if batch:
        transactions.append(_signed(batch, fee_payer, settlement_authority, recent_blockhash))
    return transactions


def _signed(
    batch: Sequence[tuple[str, Marker, int]],
    fee_payer: Keypair,
    authority: Keypair,
    blockhash: Hash,
) -> ReclaimTransaction:
    payer_key: Pubkey = fee_payer.pubkey()
    authority_key: Pubkey = authority.pubkey()
    instructions = [
        marker_reclaim_instruction(
            settlement_authority=authority_key, marker=marker, to=payer_key, lamports=lamports
        )
        for _, marker, lamports in batch
    ]
    message = Message.new_with_blockhash(instructions, payer_key, blockhash)
    by_key = {payer_key: fee_payer, authority_key: authority}
    required = message.account_keys[: message.header.num_required_signatures]
    signed = bytes(message)
    transaction = VersionedTransaction.populate(
        message, [by_key[key].sign_message(signed) for key in required]
    )
    return ReclaimTransaction(
        str(transaction.signatures[0]),
        bytes(transaction),
        tuple((fill_id, lamports) for fill_id, _, lamports in batch),
    )
