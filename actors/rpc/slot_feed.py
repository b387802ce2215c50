"""New slots as they are produced: ``slotSubscribe`` over an endpoint's WebSocket PubSub.

A hint, never evidence. SettlementActor asks the chain about its attempts
(``getSignatureStatuses``, the markers) when a slot arrives, instead of only
every ``status_interval_s``: a transaction is confirmed at a slot boundary, so
a question asked right after one sees it at once, where a timer sees it up to
one interval late. Every decision is still made on the answers of those
questions, with their context slots (actors/settlement/protocol.py): a feed
that lies, lags, drops notifications or goes away only changes *when* the
node asks, never what it concludes. A silent feed (down, refused, lossy) is
noticed by its user, which goes back to its timer.

The connection lives on an asyncio event loop on a thread of its own
(actors/rpc/loop_thread.py, as the router's HTTP does). Given several URLs (a node's
every RPC endpoint), it follows one at a time and moves to the next after a drop or a
refusal, so that the feed outlives the endpoint it started on, as the router's requests
do. It reconnects waiting ``reconnect_first_s`` and doubling up to ``reconnect_max_s``
(back to ``reconnect_first_s`` once a connection brought slots);
a WebSocket ping every ``heartbeat_s`` finds a connection nothing answers any
more. ``on_slot`` is called on the loop's thread with each notification's
slot (a number below 2^64; anything else is counted as malformed and
skipped); it must not block.

:func:`pubsub_url_for` gives the URL a Solana client would use for an RPC
URL: ``ws``/``wss`` for ``http``/``https``, and an explicit port plus one, as
@solana/web3.js's ``makeWebsocketUrl`` does (a Solana node serves PubSub on
its RPC port + 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from loguru import logger

from actors.rpc.loop_thread import LoopThread
from actors.rpc.redact import mask_url

__all__ = ["SlotFeed", "SlotFeedState", "pubsub_url_for"]

_MAX_MESSAGE_BYTES = 1024 * 1024
_SUBSCRIBE_ID = 1
_U64_END = 2**64


def pubsub_url_for(rpc_url: str) -> str:
    """The PubSub URL a Solana client derives from ``rpc_url`` (web3.js's rule)."""
    parts = urlsplit(rpc_url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {mask_url(rpc_url)}")
    scheme = "wss" if parts.scheme == "https" else "ws"
    netloc = parts.netloc
    if parts.port is not None:
        host = netloc.rsplit(":", 1)[0]
        netloc = f"{host}:{parts.port + 1}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class SlotFeedState:
    url: str  # masked
    connected: bool  # subscribed, and the connection open
    slot: int | None  # the newest slot notified
    notifications: int
    connects: int  # subscriptions made (the first, then one per reconnect)
    malformed: int  # messages that were not a slot notification or an answer
    last_error: str | None


class SlotFeed(LoopThread):
    """See the module docstring."""

    def __init__(
        self,
        urls: str | Sequence[str],
        on_slot: Callable[[int], None],
        *,
        name: str = "slot-feed",
        reconnect_first_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        heartbeat_s: float = 5.0,
    ) -> None:
        self.urls = (urls,) if isinstance(urls, str) else tuple(urls)
        if not self.urls:
            raise ValueError("a slot feed needs at least one URL")
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("ws", "wss") or not parts.hostname:
                raise ValueError(f"a slot feed needs a ws:// or wss:// URL, got {mask_url(url)}")
        for what, value in (
            ("reconnect_first_s", reconnect_first_s),
            ("reconnect_max_s", reconnect_max_s),
            ("connect_timeout_s", connect_timeout_s),
            ("heartbeat_s", heartbeat_s),
        ):
            if not value > 0:
                raise ValueError(f"{what} must be above 0, got {value!r}")
        super().__init__(name)
        self._current = 0  # the index in ``urls`` followed now, or tried next
        self._on_slot = on_slot
        self._reconnect_first_s = reconnect_first_s
        self._reconnect_max_s = max(reconnect_max_s, reconnect_first_s)
        self._connect_timeout_s = connect_timeout_s
        self._heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._connected = False
        self._slot: int | None = None
        self._notifications = 0
        self._connects = 0
        self._malformed = 0
        self._last_error: str | None = None
        self._following: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The URL followed now (or tried next, while none answers)."""
        with self._lock:
            return self.urls[self._current]

    def state(self) -> SlotFeedState:
        with self._lock:
            return SlotFeedState(
                url=mask_url(self.urls[self._current]),
                connected=self._connected,
                slot=self._slot,
                notifications=self._notifications,
                connects=self._connects,
                malformed=self._malformed,
                last_error=self._last_error,
            )

    # -- the loop's thread ---------------------------------------------------------

    async def _open(self) -> None:
        self._following = asyncio.get_running_loop().create_task(self._follow())

    async def _shut(self) -> None:
        if self._following is not None:
            self._following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._following

    async def _follow(self) -> None:
        delay_s = self._reconnect_first_s
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    if await self._subscribed(session):
                        delay_s = self._reconnect_first_s  # it worked for a while
                    error = "the server closed the connection"
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as caught:
                    error = f"{type(caught).__name__}: {caught}"
                self._lost(error, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self._reconnect_max_s)

    async def _subscribed(self, session: aiohttp.ClientSession) -> bool:
        """Connect, subscribe and pass slots on until the connection ends; True if a
        slot came through it."""
        async with session.ws_connect(
            self.url,
            heartbeat=self._heartbeat_s,
            max_msg_size=_MAX_MESSAGE_BYTES,
            autoping=True,
        ) as socket:
            await socket.send_str(
                json.dumps({"jsonrpc": "2.0", "id": _SUBSCRIBE_ID, "method": "slotSubscribe"})
            )
            any_slot = False
            async for message in socket:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    if message.type is aiohttp.WSMsgType.ERROR:
                        raise aiohttp.ClientError(f"WebSocket error: {socket.exception()}")
                    continue
                any_slot |= self._take(message.data)
            return any_slot

    def _take(self, text: str) -> bool:
        """One message: the subscription's answer, or a slot. True for a slot."""
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("id") == _SUBSCRIBE_ID:
            if "error" in payload or not isinstance(payload.get("result"), int):
                raise ValueError(f"slotSubscribe refused: {str(payload.get('error'))[:200]}")
            with self._lock:
                self._connected = True
                self._connects += 1
            logger.bind(action="rpc.slot_feed_subscribed", url=mask_url(self.url)).info(
                f"{self.name}: following slots at {mask_url(self.url)}"
            )
            return False
        slot = _slot_of(payload)
        with self._lock:
            if slot is None:
                self._malformed += 1
                return False
            self._notifications += 1
            if self._slot is None or slot > self._slot:
                self._slot = slot
        try:
            self._on_slot(slot)
        except Exception as error:  # noqa: BLE001  (a bad callback must not end the feed)
            logger.bind(action="rpc.slot_feed_callback_failed").warning(
                f"{self.name}: on_slot failed: {error!r}"
            )
        return True

    def _lost(self, error: str, retry_in_s: float) -> None:
        """The connection to the current URL ended or failed: the next URL is tried."""
        with self._lock:
            was_connected, self._connected = self._connected, False
            first_error = self._last_error is None or was_connected
            self._last_error = error
            lost = self.urls[self._current]
            self._current = (self._current + 1) % len(self.urls)
            following = self.urls[self._current]
        if first_error:  # once per loss, not once per retry
            then = "retrying" if following == lost else f"trying {mask_url(following)}"
            logger.bind(
                action="rpc.slot_feed_lost", url=mask_url(lost), retry_in_s=retry_in_s
            ).info(f"{self.name}: no slots from {mask_url(lost)} ({error}); {then}")


def _slot_of(payload: Any) -> int | None:
    if not isinstance(payload, dict) or payload.get("method") != "slotNotification":
        return None
    params = payload.get("params")
    result = params.get("result") if isinstance(params, dict) else None
    slot = result.get("slot") if isinstance(result, dict) else None
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < _U64_END:
        return None
    return slot
