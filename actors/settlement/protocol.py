"""The settlement protocol's decisions, as pure functions of what the chain said.

SettlementActor asks the chain about a settlement's attempts and calls
:func:`decide`; nothing here does I/O. The rules (docs/ARCHITECTURE.md, "Exactly once"):

* **Landed.** An attempt whose signature has a status at ``confirmed`` (or
  ``finalized``) landed: without an error the settlement is confirmed; with an
  error it failed, unless that error is the marker's ``AccountAlreadyInUse``
  (see below). A positive status decides from any view, however old.
* **The marker.** Every attempt made since schema 0005 also creates the fill's
  marker account (``market.marker``) in the same transaction as both legs, so
  the marker exists if and only if one attempt landed. A marker read showing
  it exists means *settled*: the landing signature is looked for among the
  statuses, else the caller looks it up (:class:`FindLanding`).
  An attempt that landed failed at the marker create (``AccountAlreadyInUse``)
  was refused because the marker exists: settled by another attempt only if
  one of ours is seen landed without error, or the marker's history shows a
  successful transaction with our memo (the caller checks, :class:`FindLanding`
  with ``refused``); otherwise a third party squatted the marker address and
  the settlement is quarantined, never "settled", never "failed-and-retry".
* **The context-slot rule: no decision from mixed views.** The block height is
  read together with the slot it was read at (:class:`ObservedHeight`). A
  "no" counts toward death only when it comes from a view at least as recent
  as that slot: a status answer's "no status" only if the answer's context
  slot is ``>= height.slot``; a marker read's "absent" only if its context
  slot is ``>= height.slot``. An answer from behind decides nothing (the
  caller asks again: another endpoint, or later). A transaction valid until
  ``last_valid_block_height`` can only land in a block at or below that
  height, i.e. before ``height.slot``; a view that has seen ``height.slot``
  has seen it if it landed.
* **Dead.** An unresolved attempt is dead only when ``height.block_height`` is
  past its ``last_valid_block_height`` and: if it carries a marker, the marker
  was read absent (``confirmed``) from a view ``>= height.slot``; if it does
  not (a legacy row from before 0005), its signature has no status, history
  searched, from a view ``>= height.slot``.
* A new attempt is made only when every earlier attempt is dead (or there is
  none); until then the live ones are resent, byte for byte.
* **Out of compute units.** An attempt that landed failed with
  ``ComputationalBudgetExceeded`` moved nothing and can never land again (its
  signature is spent): it is dead, not a failed settlement. It counts as dead
  like an expired one (:class:`Expire` lists it in ``out_of_compute``), so a new
  attempt, with a limit simulated again, follows once every other attempt is dead.
* Recovery (a claim with recorded attempts) decides only once the marker was
  read (when any attempt carries one) and every signature was asked about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "AttemptView",
    "Decision",
    "Expire",
    "FindLanding",
    "Landed",
    "LandedFailed",
    "MarkerRead",
    "NoStatus",
    "ObservedHeight",
    "SignatureStatus",
    "Squatted",
    "Wait",
    "decide",
    "describe_failure",
    "failed_leg",
    "judge_marker_history",
    "marker_refused",
    "out_of_compute",
    "parse_signature_statuses",
]

LANDED_COMMITMENTS = frozenset({"confirmed", "finalized"})
UNRESOLVED = frozenset({"signed", "sent"})
# The settlement transaction's instructions (market/settlement.py): 0 and 1 are
# compute budget, 2 the marker's CreateAccountWithSeed, 3 the base leg (the seller
# pays), 4 the quote leg (the buyer pays), 5 the memo.
MARKER_INDEX = 2
BASE_LEG_INDEX = 3
QUOTE_LEG_INDEX = 4
# Attempts written before schema 0005 carry no marker: their legs are at 2 and 3.
LEGACY_BASE_LEG_INDEX = 2
LEGACY_QUOTE_LEG_INDEX = 3
# The System Program's SystemError::AccountAlreadyInUse, as an instruction error.
ACCOUNT_ALREADY_IN_USE = {"Custom": 0}
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
class NoStatus:
    """``getSignatureStatuses`` had no status for the signature, in an answer whose
    context slot is ``context_slot`` (None: the answer carried none, so it counts as
    a view from behind: it decides nothing)."""

    context_slot: int | None


StatusAnswer: TypeAlias = SignatureStatus | NoStatus


@dataclass(frozen=True)
class ObservedHeight:
    """The confirmed block height, and the slot it was read at (one answer)."""

    block_height: int
    slot: int


@dataclass(frozen=True)
class MarkerRead:
    """The settlement's marker account read at ``confirmed``: whether it exists, and
    the answer's context slot."""

    exists: bool
    context_slot: int


@dataclass(frozen=True)
class AttemptView:
    """What the decision needs of a recorded attempt."""

    signature: str
    state: str  # signed | sent | confirmed | failed | expired
    last_valid_block_height: int
    has_marker: bool = True  # False: a legacy attempt, written before schema 0005


@dataclass(frozen=True)
class Landed:
    """``signature`` landed without error at ``slot``: confirm the settlement.
    ``signature`` None: the marker proves it landed, history no longer says how."""

    signature: str | None
    slot: int | None


@dataclass(frozen=True)
class LandedFailed:
    """``signature`` landed with ``err`` at ``slot``: no token moved; fail the settlement."""

    signature: str
    slot: int
    err: Any
    has_marker: bool = True


@dataclass(frozen=True)
class FindLanding:
    """The marker exists (or an attempt was refused at its create, ``refused``), and no
    attempt is seen landed without error: look the landing up in the marker's history
    (:func:`judge_marker_history`) before anything else."""

    refused: str | None  # the signature that landed failed with AccountAlreadyInUse
    refused_slot: int | None = None


@dataclass(frozen=True)
class Squatted:
    """An attempt was refused at the marker create and nothing of ours landed: a third
    party funded the marker address. Quarantine the settlement; an operator decides."""

    reason: str


@dataclass(frozen=True)
class Expire:
    """These unresolved attempts are provably dead: mark them expired, then make a
    new attempt (``signatures`` may be empty when there was no attempt at all).
    ``out_of_compute``: those of them that landed failed for want of compute units
    (recorded expired: dead; the compute-unit limit is simulated again)."""

    signatures: tuple[str, ...]
    out_of_compute: tuple[str, ...] = ()


@dataclass(frozen=True)
class Wait:
    """Nothing is decided yet; ``resend`` are the live attempts to keep resending.
    ``behind``: an answer said "no" from a view older than the height's slot."""

    resend: tuple[str, ...]
    reason: str
    behind: bool = False


Decision: TypeAlias = Landed | LandedFailed | FindLanding | Squatted | Expire | Wait


def decide(
    attempts: Sequence[AttemptView],
    statuses: Mapping[str, StatusAnswer],
    height: ObservedHeight | None,
    marker: MarkerRead | None = None,
) -> Decision:
    """The next step for one settlement (the rules are the module docstring's).

    ``statuses`` holds an answer for each signature asked about, history searched;
    a signature missing from it was not asked about and decides nothing.
    ``height``: the confirmed block height and the slot it was read at (None:
    unknown). ``marker``: the marker read at ``confirmed`` (None: not read).
    """
    refused: tuple[str, SignatureStatus] | None = None
    failed: tuple[AttemptView, SignatureStatus] | None = None
    spent: list[str] = []  # landed failed out of compute units: dead
    for attempt in attempts:
        status = statuses.get(attempt.signature)
        if not isinstance(status, SignatureStatus) or not status.landed:
            continue
        if status.err is not None and out_of_compute(status.err):
            spent.append(attempt.signature)
            continue
        if status.err is None:
            return Landed(attempt.signature, status.slot)
        if attempt.has_marker and marker_refused(status.err):
            refused = refused or (attempt.signature, status)
        else:
            failed = failed or (attempt, status)
    if refused is not None:
        return FindLanding(refused[0], refused[1].slot)
    if marker is not None and marker.exists:
        return FindLanding(None)
    if failed is not None:
        attempt, status = failed
        return LandedFailed(attempt.signature, status.slot, status.err, attempt.has_marker)
    return _dead_or_waiting(attempts, statuses, height, marker, tuple(spent))


def _dead_or_waiting(
    attempts: Sequence[AttemptView],
    statuses: Mapping[str, StatusAnswer],
    height: ObservedHeight | None,
    marker: MarkerRead | None,
    spent: tuple[str, ...] = (),
) -> Expire | Wait:
    live = [a for a in attempts if a.state in UNRESOLVED and a.signature not in spent]
    dead: list[str] = []
    alive: list[str] = []
    reasons: list[str] = []
    behind = False
    for attempt in live:
        verdict = _attempt_dead(attempt, statuses.get(attempt.signature), height, marker)
        if verdict is None:
            dead.append(attempt.signature)
            continue
        alive.append(attempt.signature)
        reasons.append(verdict)
        behind = behind or verdict.startswith("from behind")
    if alive:
        return Wait(tuple(alive), reasons[0], behind)
    unresolved_spent = tuple(
        a.signature for a in attempts if a.signature in spent and a.state in UNRESOLVED
    )
    return Expire(tuple(dead), unresolved_spent)


def _attempt_dead(  # noqa: PLR0911  (each check that can keep it alive says why)
    attempt: AttemptView,
    status: StatusAnswer | None,
    height: ObservedHeight | None,
    marker: MarkerRead | None,
) -> str | None:
    """None when ``attempt`` is provably dead, else why it is not (yet)."""
    if isinstance(status, SignatureStatus):
        return "seen at processed, not yet confirmed"
    if height is None or height.block_height <= attempt.last_valid_block_height:
        return f"valid until block height {attempt.last_valid_block_height}"
    if attempt.has_marker:
        if marker is None:
            return "the marker was not read yet"
        if marker.context_slot < height.slot:
            return (
                f"from behind: the marker was read at slot {marker.context_slot}, "
                f"the height past {attempt.last_valid_block_height} at slot {height.slot}"
            )
        return None  # absent, from a view that has seen every block it could land in
    if status is None:
        return "not asked about yet"
    if status.context_slot is None or status.context_slot < height.slot:
        return (
            f"from behind: no status at slot {status.context_slot}, "
            f"the height past {attempt.last_valid_block_height} at slot {height.slot}"
        )
    return None


def marker_refused(err: Any) -> bool:
    """Whether ``err`` is the marker create's ``AccountAlreadyInUse``: the marker
    already existed when this attempt landed."""
    detail = err.get("InstructionError") if isinstance(err, dict) else None
    return (
        isinstance(detail, list)
        and len(detail) == 2
        and detail[0] == MARKER_INDEX
        and detail[1] == ACCOUNT_ALREADY_IN_USE
    )


def out_of_compute(err: Any) -> bool:
    """Whether ``err`` says the transaction ran out of compute units
    (``{"InstructionError": [i, "ComputationalBudgetExceeded"]}``, or
    ``ProgramFailedToComplete``, which is how a BPF program's exhausted meter shows)."""
    detail = err.get("InstructionError") if isinstance(err, dict) else None
    # A BPF program (SPL Token) that exhausts its meter fails ProgramFailedToComplete
    # ("exceeded CUs meter"); a builtin fails ComputationalBudgetExceeded.
    return (
        isinstance(detail, list)
        and len(detail) == 2
        and (detail[1] in ("ComputationalBudgetExceeded", "ProgramFailedToComplete"))
    )


def judge_marker_history(find: FindLanding, entries: Sequence[Any], memo: str) -> Landed | Squatted:
    """What ``getSignaturesForAddress(marker)``'s ``entries`` (JSON dicts, newest
    first) say about a :class:`FindLanding`.

    A successful transaction with our ``memo`` is the landing: :class:`Landed`.
    Without one: after a refusal at the create, the marker was squatted
    (:class:`Squatted`); when the marker was merely read existing, a history with
    no entry at all was pruned, so it landed with its signature unknown
    (``Landed(None, None)``), and a history with only others' transactions is a
    squat too.
    """
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("err") is not None:
            continue
        shown = entry.get("memo")
        if isinstance(shown, str) and _memo_matches(shown, memo):
            signature, slot = entry.get("signature"), entry.get("slot")
            if isinstance(signature, str) and isinstance(slot, int):
                return Landed(signature, slot)
    if find.refused is not None:
        return Squatted(
            f"attempt {find.refused} was refused at the marker create (AccountAlreadyInUse) "
            "and no transaction of ours created the marker: its address was funded by a "
            "third party"
        )
    if not entries:
        return Landed(None, None)
    return Squatted(
        "the marker exists but its history shows no successful settlement of this fill: "
        "its address was funded by a third party"
    )


def _memo_matches(shown: str, memo: str) -> bool:
    # RPC shows memos as "[<length>] <text>", several joined with "; ".
    for part in shown.split("; "):
        text = part.split("] ", 1)[1] if part.startswith("[") and "] " in part else part
        if text == memo:
            return True
    return False


def parse_signature_statuses(
    signatures: Sequence[str], result: Any, context_slot: int | None = None
) -> dict[str, StatusAnswer]:
    """``getSignatureStatuses``' ``result`` for ``signatures`` (asked in that order).

    ``context_slot`` is the answer's (``result.context.slot`` when None is given):
    every "no status" carries it. Raises ValueError naming what is wrong with an
    answer that makes no sense (not one entry per signature, a malformed entry):
    nothing is decided on it.
    """
    values = result.get("value") if isinstance(result, dict) else None
    if not isinstance(values, list) or len(values) != len(signatures):
        raise ValueError(
            f"getSignatureStatuses: expected a value list of {len(signatures)} entries, "
            f"got {type(values).__name__} of {len(values) if isinstance(values, list) else '?'}"
        )
    if context_slot is None:
        context = result.get("context")
        found = context.get("slot") if isinstance(context, dict) else None
        context_slot = found if type(found) is int else None
    parsed: dict[str, StatusAnswer] = {}
    for signature, value in zip(signatures, values, strict=True):
        parsed[signature] = NoStatus(context_slot) if value is None else _status(signature, value)
    return parsed


def _status(signature: str, value: Any) -> SignatureStatus:
    if not isinstance(value, dict) or not isinstance(value.get("slot"), int):
        raise ValueError(f"getSignatureStatuses: the status of {signature} has no slot: {value!r}")
    confirmation = value.get("confirmationStatus")
    if confirmation is None and value.get("confirmations") is None:
        confirmation = "finalized"  # old nodes: confirmations null means rooted
    return SignatureStatus(value["slot"], confirmation, value.get("err"))


def failed_leg(err: Any, *, has_marker: bool = True) -> str | None:
    """Which leg an on-chain error hit: ``"base"`` (the seller's pay account),
    ``"quote"`` (the buyer's), or None (another instruction, or not an instruction
    error). ``has_marker`` False: a legacy attempt, whose legs sit one place earlier."""
    detail = err.get("InstructionError") if isinstance(err, dict) else None
    if not isinstance(detail, list) or not detail:
        return None
    legs = (
        {BASE_LEG_INDEX: "base", QUOTE_LEG_INDEX: "quote"}
        if has_marker
        else {LEGACY_BASE_LEG_INDEX: "base", LEGACY_QUOTE_LEG_INDEX: "quote"}
    )
    return legs.get(detail[0])


def describe_failure(err: Any, *, has_marker: bool = True) -> str:
    """A readable reason for an on-chain error, naming the leg (or the marker) and the error."""
    detail = err.get("InstructionError") if isinstance(err, dict) else None
    if not isinstance(detail, list) or len(detail) != 2:
        return f"the transaction failed: {err!r}"
    index, error = detail
    if has_marker and index == MARKER_INDEX:
        what = "AccountAlreadyInUse" if error == ACCOUNT_ALREADY_IN_USE else repr(error)
        return f"the marker create was refused by the System Program: {what}"
    custom = error.get("Custom") if isinstance(error, dict) else None
    what = TOKEN_ERRORS.get(custom, f"Custom({custom})") if custom is not None else repr(error)
    leg = failed_leg(err, has_marker=has_marker)
    where = f"the {leg} leg" if leg is not None else f"instruction {index}"
    return f"{where} was refused by the program: {what}"
