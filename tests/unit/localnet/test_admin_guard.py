"""The admin routes answer loopback peers only, whatever address reached them."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from localnet.admin import loopback_only


async def healthy(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


def status_for(peer: tuple[object, ...]) -> int:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        peer if name == "peername" else default
    )
    request = make_mocked_request("POST", "/admin/faults", transport=transport)

    async def call() -> int:
        try:
            return (await loopback_only(healthy)(request)).status
        except web.HTTPException as refused:
            return refused.status

    return asyncio.run(call())


@pytest.mark.parametrize("peer", [("127.0.0.1", 5000), ("127.8.9.10", 1), ("::1", 5000, 0, 0)])
def test_loopback_peers_reach_the_admin_route(peer: tuple[object, ...]) -> None:
    """127.0.0.0/8 and ::1 are let through."""
    assert status_for(peer) == 200


@pytest.mark.parametrize("peer", [("10.0.0.5", 5000), ("192.168.1.2", 1), ("2001:db8::1", 5, 0, 0)])
def test_other_peers_are_refused_with_403(peer: tuple[object, ...]) -> None:
    """Any other address gets 403, even if a proxy forwarded it to the loopback listener."""
    assert status_for(peer) == 403
