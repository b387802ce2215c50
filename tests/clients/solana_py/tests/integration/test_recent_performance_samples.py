"""These tests live in their own file so that their sleeping doesn't slow down other tests."""

import time

from pytest import fixture, mark
from solana.rpc.async_api import AsyncClient

from ..utils import assert_valid_response


@fixture(scope="session")
def _wait_until_ready() -> None:
    """Sleep for a minute so that performance samples are available."""
    # crank-node adaptation: no minute's sleep. localnet answers getRecentPerformanceSamples
    # from its first slot on (an empty list before the first 150-slot sample), and the
    # tests only check that the answer is valid. See ../../README.md.
    time.sleep(0)


@mark.integration
@mark.asyncio
async def test_get_recent_performance_samples_async(
    test_http_client_async: AsyncClient, _wait_until_ready
):
    """Test get recent performance samples (async)."""
    resp = await test_http_client_async.get_recent_performance_samples(4)
    assert_valid_response(resp)


@mark.integration
@mark.asyncio
async def test_get_recent_performance_samples(
    test_http_client_async: AsyncClient, _wait_until_ready
):
    """Test get recent performance samples (async)."""
    resp = await test_http_client_async.get_recent_performance_samples(4)
    assert_valid_response(resp)
