"""The admin routes every endpoint serves, on loopback only.

- ``GET /admin/faults``: the faults of this endpoint (``?endpoint=N`` for another);
- ``POST /admin/faults``: a JSON object (see :class:`~localnet.faults.Faults`)
  that replaces them; ``"endpoint": N`` in the body (or ``?endpoint=N``)
  targets another endpoint, which is how one that is down is brought back;
- ``DELETE /admin/faults``: heals the endpoint;
- ``POST /admin/slots`` with ``{"advance": N}``: produce N slots now;
- ``GET /admin/status``: slot, block height, endpoint URLs and faults.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiohttp import web

from localnet.errors import InvalidFaults, LocalnetError
from localnet.faults import Faults
from localnet.ledger import Ledger

__all__ = ["AdminRoutes", "FaultTarget", "loopback_only"]

MAX_ADVANCE_SLOTS = 10_000


class FaultTarget(Protocol):
    """What the admin routes need of an endpoint."""

    index: int

    @property
    def url(self) -> str: ...

    @property
    def faults(self) -> Faults: ...

    async def apply_faults(self, faults: Faults) -> None: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminRoutes:
    """Routes bound to one endpoint (the default target) and all its siblings."""

    def __init__(self, own_index: int, endpoints: Sequence[FaultTarget], ledger: Ledger) -> None:
        self._own_index = own_index
        self._endpoints = endpoints
        self._ledger = ledger

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/admin/faults", loopback_only(self._get_faults))
        app.router.add_post("/admin/faults", loopback_only(self._set_faults))
        app.router.add_delete("/admin/faults", loopback_only(self._clear_faults))
        app.router.add_post("/admin/slots", loopback_only(self._advance_slots))
        app.router.add_get("/admin/status", loopback_only(self._status))

    async def _get_faults(self, request: web.Request) -> web.StreamResponse:
        target = self._target(request, None)
        return _json({"endpoint": target.index, "faults": target.faults.to_json()})

    async def _set_faults(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        target = self._target(request, body.get("endpoint"))
        try:
            faults = Faults.from_json(body)
        except InvalidFaults as error:
            raise _bad_request(str(error)) from None
        try:
            await target.apply_faults(faults)
        except LocalnetError as error:
            raise web.HTTPConflict(
                text=json.dumps({"error": str(error)}), content_type="application/json"
            ) from None
        return _json({"endpoint": target.index, "faults": faults.to_json()})

    async def _clear_faults(self, request: web.Request) -> web.StreamResponse:
        target = self._target(request, None)
        await target.apply_faults(Faults())
        return _json({"endpoint": target.index, "faults": Faults().to_json()})

    async def _advance_slots(self, request: web.Request) -> web.StreamResponse:
        count = (await _json_body(request)).get("advance", 1)
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 1 <= count <= MAX_ADVANCE_SLOTS
        ):
            raise _bad_request(f"advance: expected an integer from 1 to {MAX_ADVANCE_SLOTS}")
        slot = self._ledger.advance_slots(count)
        return _json({"slot": slot, "block_height": self._ledger.block_height_of(slot)})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        return _json(
            {
                "slot": self._ledger.slot,
                "block_height": self._ledger.block_height,
                "endpoints": [
                    {"index": e.index, "url": e.url, "faults": e.faults.to_json()}
                    for e in self._endpoints
                ],
            }
        )

    def _target(self, request: web.Request, from_body: Any) -> FaultTarget:
        raw = from_body if from_body is not None else request.query.get("endpoint", self._own_index)
        try:
            index = int(raw)
        except (TypeError, ValueError):
            raise _bad_request(f"endpoint: {raw!r} is not an endpoint index") from None
        if not 0 <= index < len(self._endpoints):
            raise _bad_request(f"endpoint: {index} is not in 0..{len(self._endpoints) - 1}")
        return self._endpoints[index]


def loopback_only(handler: Handler) -> Handler:
    """``handler``, answering 403 to any peer outside 127.0.0.0/8 and ::1."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        # The listener binds loopback already; this keeps the admin route closed
        # even if a proxy ever forwards outside traffic to it.
        try:
            allowed = (
                request.remote is not None and ipaddress.ip_address(request.remote).is_loopback
            )
        except ValueError:
            allowed = False
        if not allowed:
            raise web.HTTPForbidden(text="the admin route answers loopback clients only")
        return await handler(request)

    return guarded


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _bad_request("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    return body


def _json(payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")
