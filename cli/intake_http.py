"""Order intake's HTTP routes, added to the node's aiohttp app (:mod:`cli.health`).

* ``POST /orders``: a signed order as JSON; 201 with the stored order.
* ``POST /orders/{order_id}/cancel``: the maker's signed cancel; 200 with the order.
* ``GET /orders/{order_id}``: one order; 200.
* ``GET /orders?market_id=M[&status=S,...][&limit=N]``: a market's orders, newest first.
* ``GET /markets/{market_id}/book``: the market's depth, best price first.

JSON in, JSON out. A refusal is ``{"error": {"field", "reason", "type"}}``
with: 400 malformed JSON or a field that cannot be read; 422 an order or
cancel that reads well but is not valid (price, size, expiry, signature,
token accounts); 404 an unknown order or market; 409 a duplicate, an order
that can no longer be cancelled, or an order whose stored row failed its checks
(edited, or a value that does not decode: it is quarantined, and only that
order answers so; the book and the list leave it out); 503 intake not running (the node is starting
or stopping) or the chain or database not answering, nothing stored: retry.
Bad input never gets a 500, and no answer ever carries a stack trace.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from loguru import logger

import market as domain
import storage
from cli.intake import CLOSED_REASON, DEFAULT_LIST_LIMIT, OrderIntake
from cli.intake_errors import (
    IntakeClosed,
    IntakeUnavailable,
    OrderNotCancellable,
    OrderNotFound,
    refusal,
)

__all__ = ["BodyTooLarge", "add_intake_routes", "book_json", "error_status", "order_json"]

IntakeSource = Callable[[], OrderIntake | None]


class BodyTooLarge(domain.MalformedJson):
    """the request body is too large."""


# Most specific first: the first class an error is an instance of decides.
_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (BodyTooLarge, 413),
    (domain.MalformedJson, 400),
    (domain.InvalidField, 400),
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


def error_response(error: BaseException) -> web.Response:
    field, reason, kind = refusal(error)
    body = {"error": {"field": field, "reason": reason, "type": kind}}
    return web.json_response(body, status=error_status(error))


def add_intake_routes(app: web.Application, intake: IntakeSource) -> None:
    """Serve order intake on ``app``; ``intake()`` is asked at each request, so the
    routes answer 503 until the node sets it and once it is closed."""
    routes = _IntakeRoutes(intake)
    app.router.add_post("/orders", routes.submit)
    app.router.add_get("/orders", routes.list_orders)
    app.router.add_post("/orders/{order_id}/cancel", routes.cancel)
    app.router.add_get("/orders/{order_id}", routes.get)
    app.router.add_get("/markets/{market_id}/book", routes.book)


class _IntakeRoutes:
    def __init__(self, intake: IntakeSource) -> None:
        self._intake = intake

    async def submit(self, request: web.Request) -> web.Response:
        def submit(intake: OrderIntake, payload: object) -> dict[str, Any]:
            return order_json(intake.submit(payload))

        return await self._answer(request, submit, status=201, reads_body=True)

    async def cancel(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]

        def cancel(intake: OrderIntake, payload: object) -> dict[str, Any]:
            return order_json(intake.cancel(order_id, payload))

        return await self._answer(request, cancel, reads_body=True)

    async def get(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        return await self._answer(request, lambda intake, _: order_json(intake.get(order_id)))

    async def list_orders(self, request: web.Request) -> web.Response:
        query = request.query

        def listed(intake: OrderIntake, _payload: object) -> dict[str, Any]:
            market_id = query.get("market_id")
            if not market_id:
                raise domain.MissingField("market_id", "the query parameter is required")
            statuses = query.get("status")
            chosen = [s for s in statuses.split(",") if s] if statuses else None
            orders = intake.list_orders(market_id, chosen, _limit(query.get("limit")))
            return {"market_id": market_id, "orders": [order_json(order) for order in orders]}

        return await self._answer(request, listed)

    async def book(self, request: web.Request) -> web.Response:
        market_id = request.match_info["market_id"]
        return await self._answer(request, lambda intake, _: book_json(intake.book(market_id)))

    async def _answer(
        self,
        request: web.Request,
        work: Callable[[OrderIntake, object], dict[str, Any]],
        *,
        status: int = 200,
        reads_body: bool = False,
    ) -> web.Response:
        """Run ``work(intake, body)`` in the loop's executor (it blocks on the database
        and the chain) and answer its result, or its refusal as JSON."""
        intake = self._intake()
        try:
            if intake is None:
                raise IntakeClosed()
            if intake.closed:
                raise IntakeClosed(CLOSED_REASON)
            payload = await _json_body(request) if reads_body else None
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(None, work, intake, payload)
        except Exception as error:  # noqa: BLE001  (every failure becomes a JSON answer)
            _log_failure(error)
            return error_response(error)
        return web.json_response(body, status=status)


async def _json_body(request: web.Request) -> object:
    """The request's JSON document; raises MalformedJson naming ``body`` if it is not one."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge("body", f"must be at most {request.client_max_size} bytes") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise domain.MalformedJson("body", "is nested too deeply") from None
    except ValueError as error:  # not UTF-8, not JSON, or an integer of thousands of digits
        raise domain.MalformedJson("body", f"is not a JSON document ({error})") from None


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIST_LIMIT
    try:
        return int(text)
    except ValueError:
        raise domain.WrongFieldType("limit", f"must be an integer, got {text!r}") from None


def _log_failure(error: Exception) -> None:
    status = error_status(error)
    if status == 500:
        logger.bind(action="intake.http_failed").opt(exception=error).error(
            f"order intake failed on a request: {error!r}"
        )
    elif status == 503:
        logger.bind(action="intake.http_unavailable").warning(f"order intake unavailable: {error}")


def order_json(stored: storage.StoredOrder) -> dict[str, Any]:
    """A stored order as the routes answer it: its signed JSON form, its id, what is
    left of it, its status and when it was stored (ISO 8601)."""
    return {
        "order_id": stored.order_id,
        "status": stored.status,
        "remaining_atoms": stored.remaining_atoms,
        "created_at": stored.created_at.isoformat(),
        **stored.signed.to_json(),
    }


def book_json(book: domain.Book) -> dict[str, Any]:
    """A book's depth: price levels, best first, per side."""
    return {
        "market_id": book.market.market_id,
        **{
            name: [
                {"price_atoms": level.price_atoms, "size_atoms": level.size_atoms,
                 "order_count": level.order_count}
                for level in book.levels(side)
            ]
            for name, side in (("bids", domain.Side.BUY), ("asks", domain.Side.SELL))
        },
    }  # fmt: skip
