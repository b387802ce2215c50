"""BlockhashActor: a fresh blockhash, its lastValidBlockHeight, and the block height.

Every ``refresh_interval_s`` (2 s by default) it asks the router, at critical
priority and ``confirmed`` commitment, for the latest blockhash and the
current block height *with the slot it was read at*: ``getEpochInfo``, whose
one answer carries ``blockHeight`` and ``absoluteSlot`` together. The
settlement protocol needs that slot: a "no" (no status, no marker) counts
toward an attempt's death only from a view at least as recent as the slot at
which the height past its lastValidBlockHeight was observed
(actors/settlement/protocol.py, "the context-slot rule"). It serves the cached
blockhash while it is younger than ``max_age_s`` and refreshes at once when it
is older; it never hands out a blockhash whose ``lastValidBlockHeight`` the
chain has passed.

It also answers "is this lastValidBlockHeight expired?" from the highest
confirmed block height seen. Block heights only grow, so an "expired" answer
is always true: a transaction with that blockhash can no longer land. A
"not expired" answer may be a little behind the chain, which is the safe
side for the settlement protocol (it waits a little longer).

Replies never block this actor or the caller's thread: a request carries a
``reply`` callable (see :class:`BlockhashClient` for futures, and
:func:`~actors.rpc.client.reply_to_actor` for actors).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pykka import ThreadingFuture

from actors.rpc.client import RouterAddress, RpcClient, reply_to_actor
from actors.rpc.errors import BlockhashUnavailable, InvalidRpcConfig
from actors.rpc.messages import Priority, RpcFailure, RpcOutcome, RpcRefused, RpcSuccess
from supervision import Clock, CrankActor

__all__ = [
    "BlockhashActor",
    "BlockhashClient",
    "BlockhashSettings",
    "BlockhashState",
    "ExpiryVerdict",
    "FreshBlockhash",
    "GetBlockhash",
    "GetBlockhashState",
    "IsExpired",
    "Unavailable",
]

COMMITMENT = "confirmed"


@dataclass(frozen=True)
class BlockhashSettings:
    refresh_interval_s: float = 2.0
    max_age_s: float = 10.0  # older than this, the cached blockhash is refreshed before use
    request_deadline_s: float = 5.0  # each refresh's deadline at the router

    def __post_init__(self) -> None:
        for name in ("refresh_interval_s", "max_age_s", "request_deadline_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRpcConfig(f"{name}: must be a number of seconds (got {value!r})")
            if not math.isfinite(value) or value <= 0:
                raise InvalidRpcConfig(f"{name}: must be above 0 (got {value!r})")


@dataclass(frozen=True)
class FreshBlockhash:
    blockhash: str  # base58
    last_valid_block_height: int
    slot: int | None  # the context slot it was read at
    fetched_at_s: float  # on the actor's clock, when the refresh that got it was sent
    block_height: int | None  # the confirmed block height known when it was handed out


@dataclass(frozen=True)
class ExpiryVerdict:
    last_valid_block_height: int
    expired: bool  # the confirmed block height is past last_valid_block_height
    block_height: int
    observed_at_s: float  # on the actor's clock, when that block height was asked for
    slot: int | None = None  # the slot that block height was read at (confirmed)


@dataclass(frozen=True)
class Unavailable:
    """No answer could be had (the refresh failed and nothing usable is cached)."""

    reason: str


@dataclass(frozen=True)
class GetBlockhash:
    reply: Callable[[FreshBlockhash | Unavailable], None]


@dataclass(frozen=True)
class IsExpired:
    last_valid_block_height: int
    reply: Callable[[ExpiryVerdict | Unavailable], None]


@dataclass(frozen=True)
class GetBlockhashState:
    """Ask: a :class:`BlockhashState`."""


@dataclass(frozen=True)
class BlockhashState:
    blockhash: str | None
    last_valid_block_height: int | None
    age_s: float | None
    block_height: int | None
    refreshing: bool
    refreshes: int
    failed_refreshes: int


@dataclass(frozen=True)
class _Refresh:
    pass


@dataclass(frozen=True)
class _Fetched:
    part: str  # "blockhash" or "height"
    outcome: RpcOutcome
    requested_at_s: float


class BlockhashActor(CrankActor):
    def __init__(
        self,
        router: RouterAddress,
        settings: BlockhashSettings | None = None,
        *,
        name: str = "blockhash",
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.settings = settings or BlockhashSettings()
        self._rpc = RpcClient(router)
        self._cached: FreshBlockhash | None = None
        self._block_height: int | None = None
        self._height_slot: int | None = None  # the slot _block_height was read at
        self._height_at_s: float | None = None
        self._pending: dict[str, _Fetched | None] = {}
        self._waiting: list[GetBlockhash | IsExpired] = []
        self._refreshes = 0
        self._failed_refreshes = 0

    def on_start(self) -> None:
        self._refresh()
        self.timers.send_periodically("refresh", self.settings.refresh_interval_s, _Refresh())

    def on_stop(self) -> None:
        self._answer_waiting(force=True, reason="the blockhash actor stopped")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetBlockhash | IsExpired):
            self._on_question(message)
        elif isinstance(message, _Fetched):
            self._on_fetched(message)
        elif isinstance(message, _Refresh):
            self._refresh()
        elif isinstance(message, GetBlockhashState):
            return self._state()
        else:
            logger.bind(action="blockhash.unknown_message", type=type(message).__name__).warning(
                f"{self.name} ignored a {type(message).__name__}"
            )
        return None

    # -- questions ----------------------------------------------------------------------

    def _on_question(self, question: GetBlockhash | IsExpired) -> None:
        if not self._answer(question):
            self._waiting.append(question)
            self._refresh()

    def _answer(self, question: GetBlockhash | IsExpired, reason: str | None = None) -> bool:
        """Answer from what is known, if that is good enough (or ``reason`` forces
        an answer: the best known, else Unavailable)."""
        if isinstance(question, GetBlockhash):
            usable = self._usable_blockhash()
            if usable is None and reason is None:
                return False
            _reply(question.reply, usable or Unavailable(reason or ""))
            return True
        verdict = self._verdict(question.last_valid_block_height, fresh_only=reason is None)
        if verdict is None and reason is None:
            return False
        _reply(question.reply, verdict or Unavailable(reason or ""))
        return True

    def _usable_blockhash(self) -> FreshBlockhash | None:
        cached = self._cached
        if (
            cached is None
            or self.clock.monotonic() - cached.fetched_at_s >= self.settings.max_age_s
        ):
            return None
        height = self._block_height
        if height is not None and height > cached.last_valid_block_height:
            return None  # the chain has passed it: never hand it out
        return FreshBlockhash(
            cached.blockhash,
            cached.last_valid_block_height,
            cached.slot,
            cached.fetched_at_s,
            height,
        )

    def _verdict(self, last_valid_block_height: int, *, fresh_only: bool) -> ExpiryVerdict | None:
        height, at_s = self._block_height, self._height_at_s
        if height is None or at_s is None:
            return None
        expired = height > last_valid_block_height
        # An "expired" verdict is final whatever its age; "not expired" wants a recent height.
        if fresh_only and not expired and self.clock.monotonic() - at_s >= self.settings.max_age_s:
            return None
        return ExpiryVerdict(last_valid_block_height, expired, height, at_s, self._height_slot)

    def _answer_waiting(self, *, force: bool, reason: str) -> None:
        waiting, self._waiting = self._waiting, []
        for question in waiting:
            if not self._answer(question, reason if force else None):
                self._waiting.append(question)

    # -- refreshing ---------------------------------------------------------------------------

    def _refresh(self) -> None:
        if self._pending:
            return  # one refresh at a time
        requested_at_s = self.clock.monotonic()
        self._pending = {"blockhash": None, "height": None}
        config = [{"commitment": COMMITMENT}]
        for part, method in (("blockhash", "getLatestBlockhash"), ("height", "getEpochInfo")):
            reply = reply_to_actor(self, _fetched_as(part, requested_at_s))
            self._rpc.call(
                method,
                config,
                reply,
                priority=Priority.CRITICAL,
                deadline_s=self.settings.request_deadline_s,
            )

    def _on_fetched(self, fetched: _Fetched) -> None:
        if fetched.part not in self._pending or self._pending[fetched.part] is not None:
            return
        self._pending[fetched.part] = fetched
        if any(part is None for part in self._pending.values()):
            return
        parts, self._pending = self._pending, {}
        problems = [
            problem
            for problem in (
                self._take_height(parts["height"]),
                self._take_blockhash(parts["blockhash"]),
            )
            if problem is not None
        ]
        self._refreshes += 1
        if problems:
            self._failed_refreshes += 1
            logger.bind(action="blockhash.refresh_failed", problems=problems).warning(
                f"blockhash refresh failed: {'; '.join(problems)}"
            )
        else:
            cached = self._cached
            assert cached is not None
            logger.bind(
                action="blockhash.refreshed",
                blockhash=cached.blockhash,
                last_valid_block_height=cached.last_valid_block_height,
                block_height=self._block_height,
            ).debug("blockhash refreshed")
        self._answer_waiting(force=True, reason="; ".join(problems) or "refreshed")

    def _take_height(self, fetched: _Fetched | None) -> str | None:
        assert fetched is not None
        outcome = fetched.outcome
        if not isinstance(outcome, RpcSuccess):
            return f"getEpochInfo: {_describe(outcome)}"
        info = outcome.result
        height = info.get("blockHeight") if isinstance(info, dict) else None
        slot = info.get("absoluteSlot") if isinstance(info, dict) else None
        if type(height) is not int or height < 0 or type(slot) is not int or slot < 0:
            return f"getEpochInfo answered {info!r:.120}"
        known = self._block_height
        if known is None or height > known:
            self._block_height, self._height_slot = height, slot
            self._height_at_s = fetched.requested_at_s
        elif height == known:
            # The same height seen again (skipped slots): keep the lowest slot it was
            # seen at, the least a view must have seen to judge against it.
            self._height_slot = min(
                slot, self._height_slot if self._height_slot is not None else slot
            )
            self._height_at_s = fetched.requested_at_s
        return None

    def _take_blockhash(self, fetched: _Fetched | None) -> str | None:
        assert fetched is not None
        outcome = fetched.outcome
        if not isinstance(outcome, RpcSuccess):
            return f"getLatestBlockhash: {_describe(outcome)}"
        parsed = _parse_latest_blockhash(outcome.result)
        if parsed is None:
            return f"getLatestBlockhash answered {outcome.result!r:.120}"
        blockhash, last_valid = parsed
        height = self._block_height
        if height is not None and height > last_valid:
            return f"getLatestBlockhash answered an expired blockhash (valid to {last_valid})"
        cached = self._cached
        if cached is None or last_valid >= cached.last_valid_block_height:
            self._cached = FreshBlockhash(
                blockhash, last_valid, outcome.context_slot, fetched.requested_at_s, height
            )
        return None

    def _state(self) -> BlockhashState:
        cached = self._cached
        return BlockhashState(
            blockhash=cached.blockhash if cached else None,
            last_valid_block_height=cached.last_valid_block_height if cached else None,
            age_s=self.clock.monotonic() - cached.fetched_at_s if cached else None,
            block_height=self._block_height,
            refreshing=bool(self._pending),
            refreshes=self._refreshes,
            failed_refreshes=self._failed_refreshes,
        )


class BlockhashClient:
    """Futures over the blockhash actor, for code outside actors (and tests).

    ``latest().get()`` raises :class:`BlockhashUnavailable` when no valid
    blockhash could be had; so does ``is_expired(...).get()`` without a block height.
    """

    def __init__(self, blockhash_actor: RouterAddress) -> None:
        self.address = blockhash_actor

    def latest(self) -> ThreadingFuture[FreshBlockhash]:
        future: ThreadingFuture[FreshBlockhash] = ThreadingFuture()
        self.address.tell(GetBlockhash(_settle(future)))
        return future

    def is_expired(self, last_valid_block_height: int) -> ThreadingFuture[ExpiryVerdict]:
        future: ThreadingFuture[ExpiryVerdict] = ThreadingFuture()
        self.address.tell(IsExpired(last_valid_block_height, _settle(future)))
        return future


def _settle(future: ThreadingFuture[Any]) -> Callable[[Any], None]:
    def settle(answer: Any) -> None:
        if isinstance(answer, Unavailable):
            error = BlockhashUnavailable(answer.reason or None)
            future.set_exception((type(error), error, None))
        else:
            future.set(answer)

    return settle


def _fetched_as(part: str, requested_at_s: float) -> Callable[[RpcOutcome], _Fetched]:
    return lambda outcome: _Fetched(part, outcome, requested_at_s)


def _reply(reply: Callable[[Any], None], answer: Any) -> None:
    try:
        reply(answer)
    except Exception:  # noqa: BLE001  (a caller's bad reply must not take this actor down)
        logger.bind(action="blockhash.reply_failed").exception("a reply callable raised")


def _describe(outcome: RpcOutcome) -> str:
    if isinstance(outcome, RpcFailure):
        return f"{outcome.kind.value}: {outcome.message}"
    if isinstance(outcome, RpcRefused):
        return f"refused: {outcome.reason.value}"
    return "ok"


def _parse_latest_blockhash(result: Any) -> tuple[str, int] | None:
    value = result.get("value") if isinstance(result, dict) else None
    if not isinstance(value, dict):
        return None
    blockhash, last_valid = value.get("blockhash"), value.get("lastValidBlockHeight")
    if not isinstance(blockhash, str) or type(last_valid) is not int:
        return None
    return blockhash, last_valid
