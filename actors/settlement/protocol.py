"""The settlement protocol's decisions, as pure functions of what the chain said.

SettlementActor asks the chain about a settlement's attempts and calls
:func:`decide`; nothing here does I/O. The rules (DESIGN.md, "Exactly once"):

* an attempt whose signature has a status at ``confirmed`` (or ``finalized``)
  landed: without an error the settlement is confirmed, with one it failed;
  either way no other attempt can ever land (they spend the same fill, and a
  new attempt is only made after every earlier one is dead);
* an attempt is *dead* only when its signature has no status, history
  searched, *and* the confirmed block height known before that status query
  was sent is past its ``last_valid_block_height``; then it can never land;
* a new attempt is made only when every earlier attempt is dead (or there is
  none); until then the live one is resent, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "AttemptView",
    "Decision",
    "Expire",
    "Landed",
    "LandedFailed",
    "SignatureStatus",
    "Wait",
    "decide",
    "describe_failure",
    "failed_leg",
    "parse_signature_statuses",
]

LANDED_COMMITMENTS = frozenset({"confirmed", "finalized"})
UNRESOLVED = frozenset({"signed", "sent"})
# The settlement transaction's instructions (market/settlement.py): 0 and 1 are
# compute budget, 2 the base leg (the seller pays), 3 the quote leg (the buyer pays).
BASE_LEG_INDEX = 2
QUOTE_LEG_INDEX = 3
# SPL Token's error codes a settlement can meet, as their program names them.
TOKEN_ERRORS = {
    0: "NotRentExempt",
    1: "InsufficientFunds",
    3: "MintMismatch",
    4: "OwnerMismatch (the delegate was revoked or changed)",
    17: "AccountFrozen",
}


@dataclass(frozen=True)
class SignatureStatus:
    """One signature's status, as ``getSignatureStatuses`` reports it."""

    slot: int
    confirmation_status: str | None  # processed | confirmed | finalized
    err: Any  # None when the transaction succeeded

    @property
    def landed(self) -> bool:
        return self.confirmation_status in LANDED_COMMITMENTS


@dataclass(frozen=True)
class AttemptView:
    """What the decision needs of a recorded attempt."""

    signature: str
    state: str  # signed | sent | confirmed | failed | expired
    last_valid_block_height: int


@dataclass(frozen=True)
class Landed:
    """``signature`` landed without error at ``slot``: confirm the settlement."""

    signature: str
    slot: int


@dataclass(frozen=True)
class LandedFailed:
    """``signature`` landed with ``err`` at ``slot``: no token moved; fail the settlement."""

    signature: str
    slot: int
    err: Any


@dataclass(frozen=True)
class Expire:
    """These unresolved attempts are provably dead: mark them expired, then make a
    new attempt (``signatures`` may be empty when there was no attempt at all)."""

    signatures: tuple[str, ...]


@dataclass(frozen=True)
class Wait:
    """Nothing is decided yet; ``resend`` are the live attempts to keep resending."""

    resend: tuple[str, ...]
    reason: str


Decision: TypeAlias = Landed | LandedFailed | Expire | Wait


def decide(
    attempts: Sequence[AttemptView],
    statuses: Mapping[str, SignatureStatus | None],
    block_height: int | None,
) -> Decision:
    """The next step for one settlement.

    ``statuses`` holds an entry (maybe ``None``: no status) for each signature
    asked about, history searched; a signature missing from it was not asked
    about and decides nothing. ``block_height`` is the confirmed block height
    known *before* that query was sent (None: unknown).
    """
    for attempt in attempts:
        status = statuses.get(attempt.signature)
        if status is not None and status.landed:
            if status.err is None:
                return Landed(attempt.signature, status.slot)
            return LandedFailed(attempt.signature, status.slot, status.err)
    live = [attempt for attempt in attempts if attempt.state in UNRESOLVED]
    dead: list[str] = []
    alive: list[str] = []
    for attempt in live:
        asked = attempt.signature in statuses
        no_status = asked and statuses[attempt.signature] is None
        past = block_height is not None and block_height > attempt.last_valid_block_height
        (dead if no_status and past else alive).append(attempt.signature)
    if alive:
        return Wait(tuple(alive), _waiting_reason(attempts, statuses, alive))
    return Expire(tuple(dead))


def _waiting_reason(
    attempts: Sequence[AttemptView],
    statuses: Mapping[str, SignatureStatus | None],
    alive: list[str],
) -> str:
    first = alive[0]
    if first not in statuses:
        return "not asked about yet"
    if statuses[first] is not None:
        return "seen at processed, not yet confirmed"
    height = next(a.last_valid_block_height for a in attempts if a.signature == first)
    return f"no status yet; valid until block height {height}"


def parse_signature_statuses(
    signatures: Sequence[str], result: Any
) -> dict[str, SignatureStatus | None]:
    """``getSignatureStatuses``' ``result`` for ``signatures`` (asked in that order).

    Raises ValueError naming what is wrong with an answer that makes no sense
    (not one entry per signature, a malformed entry): nothing is decided on it.
    """
    values = result.get("value") if isinstance(result, dict) else None
    if not isinstance(values, list) or len(values) != len(signatures):
        raise ValueError(
            f"getSignatureStatuses: expected a value list of {len(signatures)} entries, "
            f"got {type(values).__name__} of {len(values) if isinstance(values, list) else '?'}"
        )
    parsed: dict[str, SignatureStatus | None] = {}
    for signature, value in zip(signatures, values, strict=True):
        parsed[signature] = None if value is None else _status(signature, value)
    return parsed


def _status(signature: str, value: Any) -> SignatureStatus:
    if not isinstance(value, dict) or not isinstance(value.get("slot"), int):
        raise ValueError(f"getSignatureStatuses: the status of {signature} has no slot: {value!r}")
    confirmation = value.get("confirmationStatus")
    if confirmation is None and value.get("confirmations") is None:
        confirmation = "finalized"  # old nodes: confirmations null means rooted
    return SignatureStatus(value["slot"], confirmation, value.get("err"))


def failed_leg(err: Any) -> str | None:
    """Which leg an on-chain error hit: ``"base"`` (the seller's pay account),
    ``"quote"`` (the buyer's), or None (another instruction, or not an instruction error)."""
    detail = err.get("InstructionError") if isinstance(err, dict) else None
    if not isinstance(detail, list) or not detail:
        return None
    return {BASE_LEG_INDEX: "base", QUOTE_LEG_INDEX: "quote"}.get(detail[0])


def describe_failure(err: Any) -> str:
    """A readable reason for an on-chain error, naming the leg and the token error."""
    detail = err.get("InstructionError") if isinstance(err, dict) else None
    if not isinstance(detail, list) or len(detail) != 2:
        return f"the transaction failed: {err!r}"
    index, error = detail
    custom = error.get("Custom") if isinstance(error, dict) else None
    what = TOKEN_ERRORS.get(custom, f"Custom({custom})") if custom is not None else repr(error)
    leg = failed_leg(err)
    where = f"the {leg} leg" if leg is not None else f"instruction {index}"
    return f"{where} was refused by the program: {what}"
