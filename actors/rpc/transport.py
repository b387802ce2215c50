"""HTTP for the router: an asyncio event loop on a thread of its own.

The router's actor thread only hands requests over (:meth:`submit` never
blocks) and gets each result back through ``on_done``, called on the loop's
thread. Requests run concurrently, each under its own timeout, so one slow
endpoint never holds up another. :meth:`close` cancels what is still running,
closes the HTTP session and joins the thread.

**Batches** (``batch_max`` > 1): bodies submitted for one URL while the loop
is busy go out together, up to ``batch_max`` per HTTP request, as one JSON-RPC
batch (``[body, body, ...]``); each ``on_done`` still gets its own answer
(the array's element with its id, as an HTTP 200 reply of its own). A
transport failure, a 429 or a server error (5xx) is every member's, and every
member's result names the one HTTP request (``exchange``), so that the router
counts one failure of the endpoint, not one per member. An
endpoint that refuses a batch (an answer that is not an array with one answer
per member: it does not take batches, or caps their size; or an HTTP status
that refuses the request itself, :data:`BATCH_REFUSED_STATUSES`) gets the
members again one per request, and from then on everything one per request:
the transport remembers it for that URL and logs it once
(``rpc.batches_refused``), so a provider without batches is not asked twice
for every call. ``batch_max`` 1 (the class's default) is one request per body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import aiohttp
from loguru import logger

from actors.rpc.classify import AttemptResult, HttpReply, TransportFailure
from actors.rpc.loop_thread import LoopThread
from actors.rpc.redact import mask_url

__all__ = ["BATCH_REFUSED_STATUSES", "AioHttpTransport", "OnDone", "Transport"]

OnDone = Callable[[AttemptResult], None]
_HEADERS = {"Content-Type": "application/json"}
# Statuses that refuse a batch request as such (bad request, not found or not allowed
# for a POST of an array, too large, not understood): its members go again one by one.
# A 429 or a 5xx is the endpoint's state, not the batch's: every member's answer.
BATCH_REFUSED_STATUSES = frozenset({400, 404, 405, 413, 415, 422, 501})


class Transport(Protocol):
    """Posts JSON-RPC bodies; the router's only way to the network."""

    def start(self) -> None: ...

    def submit(self, url: str, body: bytes, timeout_s: float, on_done: OnDone) -> None:
        """Post ``body`` to ``url``; ``on_done`` gets the result exactly once
        (never, if the transport is closed first). Must not block."""

    def close(self) -> None: ...


class _Member(NamedTuple):
    """One body waiting to go out in a batch."""

    body: bytes
    timeout_s: float
    on_done: OnDone


class AioHttpTransport(LoopThread):
    """An aiohttp session on an event loop the transport owns (:class:`LoopThread`)."""

    def __init__(
        self, *, name: str = "rpc-transport", connections_per_host: int = 64, batch_max: int = 1
    ) -> None:
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {batch_max}")
        super().__init__(name)
        self._connections_per_host = connections_per_host
        self._batch_max = batch_max
        self._gathering: dict[str, list[_Member]] = {}  # per URL, on the loop's thread
        self.refusing_batches: set[str] = set()  # URLs sent one per request from now on
        self.posts = 0  # HTTP requests made (read by tests and benchmarks)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, url: str, body: bytes, timeout_s: float, on_done: OnDone) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # closed meanwhile: results are not wanted
            loop.call_soon_threadsafe(self._spawn, url, body, timeout_s, on_done)

    # -- the loop's thread ---------------------------------------------------------

    async def _open(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=self._connections_per_host)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        )

    async def _shut(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _spawn(self, url: str, body: bytes, timeout_s: float, on_done: OnDone) -> None:
        if self._batch_max == 1 or url in self.refusing_batches:
            self._task(self._post(url, body, timeout_s, on_done))
            return
        gathering = self._gathering.setdefault(url, [])
        gathering.append(_Member(body, timeout_s, on_done))
        if len(gathering) == 1:
            # Runs after every callback already queued on the loop: the submits
            # made while the loop was busy join this batch.
            asyncio.get_running_loop().call_soon(self._flush, url)
        elif len(gathering) >= self._batch_max:
            self._flush(url)

    def _flush(self, url: str) -> None:
        members = self._gathering.pop(url, [])
        if len(members) == 1:
            member = members[0]
            self._task(self._post(url, member.body, member.timeout_s, member.on_done))
        elif members:
            self._task(self._post_batch(url, members))

    def _task(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, body: bytes, timeout_s: float, on_done: OnDone) -> None:
        _deliver(on_done, await self._exchange(url, body, timeout_s))

    async def _exchange(self, url: str, body: bytes, timeout_s: float) -> AttemptResult:
        assert self._session is not None
        self.posts += 1
        exchange = self.posts
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session.post(url, data=body, headers=_HEADERS) as response:
                    payload = await response.read()
            return HttpReply(response.status, payload, time.perf_counter() - started, exchange)
        except TimeoutError:
            detail = f"no answer within {timeout_s:.3g}s"
            return TransportFailure(True, detail, time.perf_counter() - started, exchange)
        except (aiohttp.ClientError, OSError) as error:
            detail = f"{type(error).__name__}: {error}".replace(url, mask_url(url))
            return TransportFailure(False, detail, time.perf_counter() - started, exchange)

    async def _post_batch(self, url: str, members: list[_Member]) -> None:
        body = b"[" + b",".join(member.body for member in members) + b"]"
        # The batch waits no longer than its most impatient member would have.
        result = await self._exchange(url, body, min(member.timeout_s for member in members))
        if isinstance(result, HttpReply) and result.status in BATCH_REFUSED_STATUSES:
            self._refused(url, f"HTTP {result.status}", members)
            return
        if not isinstance(result, HttpReply) or result.status != 200:
            for member in members:
                _deliver(member.on_done, result)
            return
        ids = [_request_id(member.body) for member in members]
        if any(i is None for i in ids) or len(set(ids)) != len(ids):
            # Ids we cannot tell apart (not the router's): each member on its own.
            self._one_by_one(url, members)
            return
        answers = _answers_by_id(result.body)
        if answers is None or any(i not in answers for i in ids):
            answered = "no array of answers" if answers is None else "not every member"
            self._refused(url, f"answered {answered}", members)
            return
        for member, request_id in zip(members, ids, strict=True):
            reply = HttpReply(200, answers[request_id], result.latency_s, result.exchange)
            _deliver(member.on_done, reply)

    def _one_by_one(self, url: str, members: list[_Member]) -> None:
        for member in members:
            self._task(self._post(url, member.body, member.timeout_s, member.on_done))

    def _refused(self, url: str, how: str, members: list[_Member]) -> None:
        """``url`` refused a batch: its members again one by one, and everything after."""
        if url not in self.refusing_batches:
            self.refusing_batches.add(url)
            logger.bind(action="rpc.batches_refused", endpoint=mask_url(url)).warning(
                f"{mask_url(url)} refused a JSON-RPC batch of {len(members)} ({how}): "
                "one request per call to it from now on (rpc_batch_max 1 skips the try)"
            )
        self._one_by_one(url, members)


def _deliver(on_done: OnDone, result: AttemptResult) -> None:
    try:
        on_done(result)
    except Exception:  # noqa: BLE001  (a bad callback must not kill the loop)
        logger.bind(action="rpc.transport_callback_failed").exception("on_done raised")


def _request_id(body: bytes) -> Any:
    """The id of one JSON-RPC request body (the router's are ints), else None."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    request_id = request.get("id") if isinstance(request, dict) else None
    return request_id if isinstance(request_id, int | str) else None


def _answers_by_id(payload: bytes) -> dict[Any, bytes] | None:
    """Each answer of a JSON-RPC batch response, re-encoded on its own, by id;
    None if ``payload`` is not an array of answer objects."""
    try:
        answers = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(answers, list):
        return None
    by_id: dict[Any, bytes] = {}
    for answer in answers:
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), int | str):
            return None
        by_id[answer["id"]] = json.dumps(answer, separators=(",", ":")).encode()
    return by_id
