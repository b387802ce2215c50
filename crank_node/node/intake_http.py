"""Order intake's HTTP routes, added to the node's aiohttp app (:mod:`crank_node.node.health`).

* ``POST /orders``: a signed order as JSON; 201 with the stored order.
* ``POST /orders/{order_id}/cancel``: the maker's signed cancel; 200 with the order.
* ``GET /orders/{order_id}``: one order; 200.
* ``GET /orders?market_id=M[&status=S,...][&limit=N]``: a market's orders, newest first.
* ``GET /markets/{market_id}/book``: the market's depth, best price first.
* ``POST /orders/cancel-all``: the maker's signed cancel-all of one market; 200 with the ids.
* ``GET /orders/{order_id}/fills``: the order's fills with their settlement states.
* ``GET /fills?maker=PUBKEY[&since=CURSOR][&limit=N]``: a maker's fills, paged by a cursor.
* ``GET /openapi.json``: all of this as OpenAPI 3.1 (docs/openapi.json; docs/API.md).

u64s are read as JSON integers up to 2^53 or decimal strings, and answered as strings.

JSON in, JSON out. A refusal is ``{"error": {"field", "reason", "type", "code"}}``
with: 400 malformed JSON or a field that cannot be read; 422 an order or
cancel that reads well but is not valid (price, size, expiry, signature,
token accounts); 404 an unknown order or market; 409 a duplicate, an order
that can no longer be cancelled, or an order whose stored row failed its checks
(edited, or a value that does not decode: it is quarantined, and only that
order answers so; the book and the list leave it out); 503 intake not running (the node is starting
or stopping) or the chain or database not answering, nothing stored: retry.
Bad input never gets a 500, and no answer ever carries a stack trace.

Limits (:class:`IntakeLimits`): a body over ``max_body_bytes`` is 413 from its
``Content-Length`` before a byte of it is read; a body not read within
``body_timeout_s`` is 408; 429 with ``Retry-After`` past a client address's or
a maker's token bucket (a maker is charged only for a request its key signed,
so nobody can spend another maker's budget). JSON is read strictly: a duplicate
key, ``NaN`` or ``Infinity`` is 400 naming the key. Echoed values are cut to
64 characters with a marker, in answers and in logs; repeated log lines are
held back to one per interval. A client that leaves mid-body is counted and
logged at DEBUG.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from loguru import logger

import market as domain
import storage
from crank_node.node.http_limits import KeyedBuckets, LogLimiter, clip, retry_after_s
from crank_node.node.http_server import ListenerEvents, json_error
from crank_node.node.intake import CLOSED_REASON, DEFAULT_LIST_LIMIT, OrderIntake
from crank_node.node.intake_errors import (
    BadCursor,
    IntakeClosed,
    IntakeUnavailable,
    OrderNotCancellable,
    OrderNotFound,
    refusal,
)
from crank_node.node.intake_fills import advance_cursor, decode_cursor, encode_cursor, fill_json
from crank_node.node.intake_openapi import openapi_document
from crank_node.node.intake_stream import (
    SharedBooks,
    StreamLimits,
    StreamState,
    serve_stream,
    stream_topic,
)
from market.cancel_all import SignedCancelAll

__all__ = [
    "BodyTooLarge",
    "IntakeLimits",
    "add_intake_routes",
    "book_json",
    "error_status",
    "intake_app",
    "order_json",
]

IntakeSource = Callable[[], OrderIntake | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_BASE58 = "[1-9A-HJ-NP-Za-km-z]+"
# ASCII only: int() also takes ' 5', '1_000' and '\u0665' (an Arabic-Indic five).
_DIGITS = re.compile(r"[0-9]{1,9}")


class BodyTooLarge(domain.MalformedJson):
    """the request body is too large."""


class BodyTimeout(domain.MalformedJson):
    """the request body did not arrive in time."""


class RateLimited(domain.InvalidField):
    """too many requests; retry after the time in Retry-After."""

    def __init__(self, field: str, reason: str, wait_s: float) -> None:
        super().__init__(field, reason)
        self.wait_s = wait_s


class ClientGone(Exception):
    """the client closed the connection before its body arrived."""


@dataclass(frozen=True)
class IntakeLimits:
    """Intake's own limits: body size and time, and the two token buckets."""

    max_body_bytes: int = 16 * 1024
    body_timeout_s: float = 10.0
    client_rate_per_s: float = 50.0
    client_burst: int = 100
    maker_rate_per_s: float = 10.0
    maker_burst: int = 20
    log_interval_s: float = 10.0
    stream: StreamLimits = field(default_factory=StreamLimits)


# Most specific first: the first class an error is an instance of decides.
_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (BodyTooLarge, 413),
    (BodyTimeout, 408),
    (RateLimited, 429),
    (domain.MalformedJson, 400),
    (domain.InvalidField, 400),
    (BadCursor, 400),
    (domain.UnknownMarket, 404),
    (OrderNotFound, 404),
    (domain.DuplicateClientOrderId, 409),
    (storage.DuplicateEntry, 409),
    (OrderNotCancellable, 409),
    (storage.MalformedRow, 409),  # this order only: quarantined, the others answer
    (domain.MarketError, 422),
    (IntakeUnavailable, 503),
    (storage.StorageError, 503),
)


def error_status(error: BaseException) -> int:
    """The HTTP status answering ``error`` (500 only for a bug, never for input)."""
    for kind, status in _STATUSES:
        if isinstance(error, kind):
            return status
    return 500


# Intake's own limits, ahead of intake_errors' table (they subclass MalformedJson).
_LIMIT_CODES = (
    (BodyTooLarge, "body_too_large"),
    (BodyTimeout, "timeout"),
    (RateLimited, "rate_limited"),
)


def error_response(error: BaseException) -> web.Response:
    field, reason, kind, code = refusal(error)
    code = next((name for cls, name in _LIMIT_CODES if isinstance(error, cls)), code)
    response = json_error(error_status(error), field, reason, kind, code=code)
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(retry_after_s(error.wait_s))
    if isinstance(error, BodyTooLarge | BodyTimeout):
        response.force_close()  # the rest of the body is not read
    return response


def intake_app(
    intake: IntakeSource,
    limits: IntakeLimits | None = None,
    events: ListenerEvents | None = None,
    *,
    now_s: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The public intake listener's app: order routes behind the body and rate limits."""
    limits = limits or IntakeLimits()
    events = events or ListenerEvents("intake", limits.log_interval_s)
    guard = _Guard(limits, events, now_s)
    app = web.Application(client_max_size=limits.max_body_bytes, middlewares=[guard.middleware])
    add_intake_routes(app, intake, guard)

    async def end_streams(_app: web.Application) -> None:
        guard.stopping = True  # each stream ends within a poll interval

    async def join_stream_threads(_app: web.Application) -> None:
        guard.stream_pool.shutdown(wait=True, cancel_futures=True)

    app.on_shutdown.append(end_streams)
    app.on_cleanup.append(join_stream_threads)
    return app


def add_intake_routes(
    app: web.Application, intake: IntakeSource, guard: _Guard | None = None
) -> None:
    """Serve order intake on ``app``; ``intake()`` is asked at each request, so the
    routes answer 503 until the node sets it and once it is closed."""
    routes = _IntakeRoutes(intake, guard or _Guard(IntakeLimits(), None, time.monotonic))
    app.router.add_post("/orders", routes.submit)
    app.router.add_get("/orders", routes.list_orders)
    app.router.add_post("/orders/cancel-all", routes.cancel_all)
    # An order id is base58: the pattern keeps /orders/cancel-all from also being an order.
    app.router.add_post(f"/orders/{{order_id:{_BASE58}}}/cancel", routes.cancel)
    app.router.add_get(f"/orders/{{order_id:{_BASE58}}}", routes.get)
    app.router.add_get(f"/orders/{{order_id:{_BASE58}}}/fills", routes.order_fills)
    app.router.add_get("/fills", routes.maker_fills)
    app.router.add_get("/markets/{market_id}/book", routes.book)
    app.router.add_get("/stream", routes.stream)
    app.router.add_get("/openapi.json", _openapi)


async def _openapi(_request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


class _Guard:
    """Per-request limits: the client's bucket and the body's declared size (before
    any route runs), the maker's bucket (once the maker's signature is checked)."""

    def __init__(
        self, limits: IntakeLimits, events: ListenerEvents | None, now_s: Callable[[], float]
    ) -> None:
        self.limits = limits
        self.stream = limits.stream
        self.stopping = False  # the listener is stopping: live streams end
        self.open_streams = 0  # only the listener's loop thread changes it
        # Half a poll interval: every stream of a market in one round shares one read.
        self.books = SharedBooks(limits.stream.poll_interval_s / 2)
        self.stream_pool = ThreadPoolExecutor(
            max_workers=limits.stream.poll_threads, thread_name_prefix="intake-stream"
        )
        self.events = events or ListenerEvents("intake", limits.log_interval_s)
        self.now_s = now_s
        self.clients = KeyedBuckets(limits.client_rate_per_s, limits.client_burst)
        self.makers = KeyedBuckets(limits.maker_rate_per_s, limits.maker_burst)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            wait_s = self.clients.take(request.remote or "?", self.now_s())
            if wait_s:
                raise RateLimited("client", "too many requests from this address", wait_s)
            declared = request.content_length
            if declared is not None and declared > self.limits.max_body_bytes:
                raise BodyTooLarge(
                    "Content-Length",
                    f"declares {declared} bytes; the most is {self.limits.max_body_bytes}",
                )
        except domain.MarketError as error:
            self.note_refusal(error)
            return error_response(error)
        try:
            return await handler(request)
        except web.HTTPException as error:  # aiohttp's own 404/405: the same JSON shape
            if error.status < 400:
                raise
            allow = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
            return json_error(error.status, "path", error.reason, type(error).__name__, allow)

    def charge_maker(self, maker: str) -> None:
        wait_s = self.makers.take(maker, self.now_s())
        if wait_s:
            raise RateLimited("maker", "too many requests from this maker", wait_s)

    def note_refusal(self, error: BaseException) -> None:
        if isinstance(error, RateLimited):
            self.events.count(f"rate_limited_{error.field}")
        elif isinstance(error, BodyTooLarge):
            self.events.count("bodies_too_large")
        elif isinstance(error, BodyTimeout):
            self.events.count("body_timeouts")


class _IntakeRoutes:
    def __init__(self, intake: IntakeSource, guard: _Guard) -> None:
        self._intake = intake
        self._guard = guard

    async def submit(self, request: web.Request) -> web.StreamResponse:
        def submit(intake: OrderIntake, payload: object) -> dict[str, Any]:
            return order_json(intake.submit(payload))

        return await self._answer(request, submit, status=201, signed=_order_maker)

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        order_id = request.match_info["order_id"]

        def cancel(intake: OrderIntake, payload: object) -> dict[str, Any]:
            return order_json(intake.cancel(order_id, payload))

        return await self._answer(request, cancel, signed=_cancel_maker)

    async def cancel_all(self, request: web.Request) -> web.StreamResponse:
        def cancel_all(intake: OrderIntake, payload: object) -> dict[str, Any]:
            signed, cancelled = intake.cancel_all(payload)
            return {
                "market_id": signed.request.market_id,
                "maker": str(signed.request.maker),
                "cancelled": list(cancelled),
            }

        return await self._answer(request, cancel_all, signed=_cancel_all_maker)

    async def order_fills(self, request: web.Request) -> web.StreamResponse:
        order_id = request.match_info["order_id"]

        def fills(intake: OrderIntake, _payload: object) -> dict[str, Any]:
            found = intake.order_fills(order_id)
            return {"order_id": order_id, "fills": [fill_json(fill) for fill in found]}

        return await self._answer(request, fills)

    async def maker_fills(self, request: web.Request) -> web.StreamResponse:
        query = request.query

        def fills(intake: OrderIntake, _payload: object) -> dict[str, Any]:
            maker = query.get("maker")
            if not maker:
                raise domain.MissingField("maker", "the query parameter is required")
            seen = decode_cursor(query.get("since"))
            found = intake.maker_fills(maker, seen, _limit(query.get("limit")))
            return {
                "maker": maker,
                "fills": [fill_json(fill) for fill in found],
                "cursor": encode_cursor(advance_cursor(seen, found)),
            }

        return await self._answer(request, fills)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """``GET /stream?market_id=M`` or ``?maker=PK``, from ``since`` or ``Last-Event-ID``
        (:mod:`crank_node.node.intake_stream`)."""
        query = request.query
        since = query.get("since") or request.headers.get("Last-Event-ID")
        opened: list[StreamState] = []

        def open_stream(intake: OrderIntake, _payload: object) -> dict[str, Any]:
            topic = stream_topic(intake, query.get("market_id"), query.get("maker"))
            guard = self._guard
            opened.append(
                StreamState(topic, decode_cursor(since), guard.stream.page_fills, guard.books)
            )
            return {}

        guard = self._guard
        if guard.open_streams >= guard.stream.max_streams:
            guard.events.count("streams_refused")
            return error_response(
                IntakeUnavailable(
                    "stream", f"{guard.stream.max_streams} live streams are open; retry later"
                )
            )
        refused = await self._answer(request, open_stream)
        intake = self._intake()
        if not opened or intake is None:
            return refused
        guard.open_streams += 1
        try:
            return await serve_stream(
                request,
                intake,
                opened[0],
                guard.stream,
                guard.events,
                stopping=lambda: guard.stopping,
                executor=guard.stream_pool,
            )
        finally:
            guard.open_streams -= 1

    async def get(self, request: web.Request) -> web.StreamResponse:
        order_id = request.match_info["order_id"]
        return await self._answer(request, lambda intake, _: order_json(intake.get(order_id)))

    async def list_orders(self, request: web.Request) -> web.StreamResponse:
        query = request.query

        def listed(intake: OrderIntake, _payload: object) -> dict[str, Any]:
            market_id = query.get("market_id")
            if not market_id:
                raise domain.MissingField("market_id", "the query parameter is required")
            statuses = query.get("status")
            chosen = None if statuses is None else statuses.split(",")
            if chosen is not None and "" in chosen:
                raise domain.InvalidField("status", "must be statuses separated by commas")
            orders = intake.list_orders(market_id, chosen, _limit(query.get("limit")))
            return {"market_id": market_id, "orders": [order_json(order) for order in orders]}

        return await self._answer(request, listed)

    async def book(self, request: web.Request) -> web.StreamResponse:
        market_id = request.match_info["market_id"]
        return await self._answer(request, lambda intake, _: book_json(intake.book(market_id)))

    async def _answer(
        self,
        request: web.Request,
        work: Callable[[OrderIntake, object], dict[str, Any]],
        *,
        status: int = 200,
        signed: Callable[[object], str | None] | None = None,
    ) -> web.StreamResponse:
        """Run ``work(intake, body)`` in the loop's executor (it blocks on the database
        and the chain) and answer its result, or its refusal as JSON. A route that
        takes a ``signed`` body reads it first and charges the maker who signed it."""
        intake = self._intake()
        try:
            if intake is None:
                raise IntakeClosed()
            if intake.closed:
                raise IntakeClosed(CLOSED_REASON)
            payload = None
            if signed is not None:
                payload = await self._json_body(request)
                maker = signed(payload)
                if maker is not None:
                    self._guard.charge_maker(maker)
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(None, work, intake, payload)
        except ClientGone:
            self._guard.events.log(
                "DEBUG",
                "http.client_disconnected",
                f"intake: a client ({request.remote}) left before its body arrived",
            )
            self._guard.events.count("client_disconnects")  # after the log: tests wait on it
            return web.Response(status=400)  # never reaches the client: it is gone
        except Exception as error:  # noqa: BLE001  (every failure becomes a JSON answer)
            self._guard.note_refusal(error)
            _log_failure(error, self._guard.events)
            return error_response(error)
        return web.json_response(body, status=status)

    async def _json_body(self, request: web.Request) -> object:
        """The request's JSON document, read within the body timeout; raises
        MalformedJson naming ``body`` (or the key at fault) if it is not one."""
        limits = self._guard.limits
        try:
            async with asyncio.timeout(limits.body_timeout_s):
                raw = await request.read()
        except TimeoutError:
            raise BodyTimeout("body", f"did not arrive within {limits.body_timeout_s:g}s") from None
        except web.HTTPRequestEntityTooLarge:
            raise BodyTooLarge("body", f"must be at most {limits.max_body_bytes} bytes") from None
        except ConnectionError:
            raise ClientGone() from None
        return refuse_unsafe_integers(strict_json(raw))


def strict_json(raw: bytes) -> object:
    """``raw`` as a JSON document, strictly: UTF-8, no duplicate keys, no NaN or
    Infinity (each refused naming the key it is under, ``body`` at the top)."""
    try:
        document = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_NonFinite
        )
    except domain.MalformedJson:
        raise
    except RecursionError:
        raise domain.MalformedJson("body", "is nested too deeply") from None
    except ValueError as error:  # not UTF-8, not JSON, or an integer of thousands of digits
        raise domain.MalformedJson("body", f"is not a JSON document ({clip(str(error))})") from None
    if isinstance(document, _NonFinite):
        raise domain.MalformedJson("body", f"{document} is not a JSON document")
    return document


class _NonFinite(str):
    """NaN, Infinity or -Infinity where a value was: refused once its key is known."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise domain.MalformedJson(clip(key), "appears twice in the object")
        if isinstance(value, _NonFinite):
            raise domain.MalformedJson(clip(key), f"{value} is not a JSON number")
        if isinstance(value, list) and any(isinstance(item, _NonFinite) for item in value):
            raise domain.MalformedJson(clip(key), "holds NaN or Infinity, not JSON numbers")
        document[key] = value
    return document


def _order_maker(payload: object) -> str | None:
    """The maker of a signed order whose signature checks out (None otherwise: the
    order is then refused by intake, charged to the client's address only)."""
    try:
        signed = domain.SignedOrder.from_json(payload)
    except domain.MarketError:
        return None
    return str(signed.order.maker) if signed.is_signed_by_maker() else None


def _cancel_all_maker(payload: object) -> str | None:
    try:
        signed = SignedCancelAll.from_json(payload)
        signed.verify()
    except domain.MarketError:
        return None
    return str(signed.request.maker)


def _cancel_maker(payload: object) -> str | None:
    try:
        signed = domain.SignedCancel.from_json(payload)
    except domain.MarketError:
        return None
    return str(signed.request.maker) if signed.is_signed_by_maker() else None


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIST_LIMIT
    if not _DIGITS.fullmatch(text):
        raise domain.WrongFieldType(
            "limit", f"must be a whole number in ASCII digits, got {clip(repr(text))}"
        )
    return int(text)


_FAILURE_LOG = LogLimiter()


def _log_failure(error: Exception, events: ListenerEvents) -> None:
    status = error_status(error)
    if status == 500:
        logger.bind(action="intake.http_failed").opt(exception=error).error(
            f"order intake failed on a request: {clip(repr(error), 500)}"
        )
    elif status == 503:
        events.log(
            "WARNING",
            "intake.http_unavailable",
            f"order intake unavailable: {clip(str(error), 200)}",
            type(error).__name__,
        )


# The largest integer every JSON reader keeps exactly (an IEEE double's 53-bit mantissa).
MAX_SAFE_JSON_INTEGER = 2**53


def refuse_unsafe_integers(document: object) -> object:
    """``document`` with its top-level JSON numbers checked: one above 2^53 is 400 naming
    its key and saying to send a decimal string (the maker's own JSON library may already
    have rounded it, and signed the rounded value); an integral one written as ``797.0``
    or ``1e3`` is that integer (JSON, and JSON Schema's ``integer``, make no difference)."""
    if not isinstance(document, dict):
        return document
    for key, value in document.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if abs(value) > MAX_SAFE_JSON_INTEGER:
            shown = str(value) if isinstance(value, int) else "..."
            raise domain.NumberOutOfRange(
                clip(str(key)),
                f"is a JSON number above 2^53 ({MAX_SAFE_JSON_INTEGER}), which many "
                f'JSON readers round; send it as a decimal string, e.g. "{clip(shown, 24)}"',
            )
        if isinstance(value, float) and value.is_integer():
            document[key] = int(value)
    return document


def u64_text(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every integer value as a decimal string (u64s are answered as
    strings: a JavaScript client would round a number above 2^53)."""
    return {
        key: str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        for key, value in document.items()
    }


def order_json(stored: storage.StoredOrder) -> dict[str, Any]:
    """A stored order as the routes answer it: its signed JSON form, its id, what is
    left of it, its status and when it was stored (ISO 8601); u64s as decimal strings."""
    return {
        "order_id": stored.order_id,
        "status": stored.status,
        "remaining_atoms": str(stored.remaining_atoms),
        "created_at": stored.created_at.isoformat(),
        **u64_text(stored.signed.to_json()),
    }


def book_json(book: domain.Book) -> dict[str, Any]:
    """A book's depth: price levels, best first, per side."""
    return {
        "market_id": book.market.market_id,
        **{
            name: [
                {
                    "price_atoms": str(level.price_atoms),
                    "size_atoms": str(level.size_atoms),
                    "order_count": level.order_count,
                }
                for level in book.levels(side)
            ]
            for name, side in (("bids", domain.Side.BUY), ("asks", domain.Side.SELL))
        },
    }
