"""MarkerReclaimActor's messages and settings (see :mod:`actors.marker_reclaim`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GetReclaimState", "ReclaimSettings", "ReclaimState", "RoundEnded", "RunRound"]


@dataclass(frozen=True)
class ReclaimSettings:
    interval_s: float = 10.0  # between rounds; markers live minutes, nothing is urgent
    request_deadline_s: float = 10.0
    markers_per_round: int = 1000
    round_timeout_s: float = 60.0  # a round whose answers never came is abandoned

    def __post_init__(self) -> None:
        for name in ("interval_s", "request_deadline_s", "round_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, got {getattr(self, name)!r}")
        if self.markers_per_round < 1:
            raise ValueError(f"markers_per_round must be at least 1, got {self.markers_per_round}")


@dataclass(frozen=True)
class GetReclaimState:
    """Ask: a :class:`ReclaimState` (for /status)."""


@dataclass(frozen=True)
class ReclaimState:
    """What this instance did since it started, and the last finalized view it used."""

    markets: tuple[str, ...]
    rounds: int
    discovered: int
    transactions_sent: int
    resends: int
    reclaimed: int
    lamports_reclaimed: int
    gone: int
    in_flight: int
    finalized_slot: int | None
    finalized_block_height: int | None


@dataclass(frozen=True)
class RunRound:
    """Tell: run a round now (also the timer's message)."""


@dataclass(frozen=True)
class RoundEnded:
    """Told to listeners at the end of each round (tests, the demo): what it did."""

    markers_judged: int
    markers_sent: int  # in reclaim transactions sent this round
    transactions_sent: int
    reclaimed: int
    gone: int
    finalized_slot: int | None
    finalized_block_height: int | None
    problem: str | None  # why it ended early, if it did
