"""An asyncio event loop on a daemon thread of its own, for the router's HTTP
(actors/rpc/transport.py) and the slot feed (actors/rpc/slot_feed.py).

:meth:`LoopThread.start` runs the subclass's ``_open`` on the new loop and
returns once it is done (raising what it raised); :meth:`LoopThread.close`
stops the loop, runs ``_shut`` on it and joins the thread, abandoning it
(logged ``rpc.loop_stuck``) if it does not end in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from loguru import logger

__all__ = ["LoopThread"]

START_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0


class LoopThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    async def _open(self) -> None:
        """Runs on the loop before :meth:`start` returns."""

    async def _shut(self) -> None:
        """Runs on the loop once it is stopped, before it is closed."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"{self.name} did not start within {START_TIMEOUT_S}s")
        if self._start_error is not None:
            raise RuntimeError(f"{self.name} failed to start") from self._start_error

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already stopped
            loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_TIMEOUT_S)
        if thread.is_alive():
            logger.bind(action="rpc.loop_stuck", thread=self.name).error(
                f"{self.name} did not stop within {CLOSE_TIMEOUT_S}s; abandoned"
            )

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._open())
            self._loop = loop
        except Exception as error:  # noqa: BLE001  (reported to start(), which raises it)
            self._start_error = error
        self._ready.set()
        try:
            if self._start_error is None:
                loop.run_forever()
        finally:
            loop.run_until_complete(self._shut())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
