"""Keeping LiteSVM on a thread of its own.

LiteSVM's native code leaves the calling thread's x87 floating-point state
dirty. Measured in this project: after LiteSVM had executed transactions on a
thread, SQLite on that same thread computed ``printf('%+.3f', 0.0)`` as
``'NaN'`` and its date functions returned NULL, so an INSERT with a
database-clock timestamp failed its NOT NULL constraint. x87 state belongs to
the thread, so :class:`ThreadConfined` builds the object on one dedicated
thread and runs every method call there; the threads of the node (actors,
SQLite, the tests' main thread) never execute LiteSVM code.

localnet's own event-loop thread, which serves every RPC request and produces
the slots, is *adopted*: it calls directly. A hop per LiteSVM call on that hot
path cut batched send throughput tenfold, and the dirt stays within
localnet's own threads. The ledger's lock serialises every use either way.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from localnet.errors import LocalnetNotRunning

__all__ = ["ThreadConfined"]

T = TypeVar("T")

_STOP = object()


class _Call:
    __slots__ = ("args", "done", "error", "function", "result")

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.function = function
        self.args = args
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class ThreadConfined(Generic[T]):
    """An object that lives on, and is only ever called from, one thread.

    ``confined.call(lambda obj: obj.method(x))`` or the proxy attribute form
    ``confined.proxy.method(x)``; both block the caller until the call has run
    and re-raise its exception. Calls made from the confined thread itself run
    directly.
    """

    def __init__(self, factory: Callable[[], T], name: str) -> None:
        self._queue: queue.SimpleQueue[_Call | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._closed = False
        self._direct: set[int] = set()  # adopted threads, besides the confined one
        self._target: T | None = None
        self._thread.start()
        self._target = self.call_raw(factory)
        self.proxy: Any = _Proxy(self)

    def adopt_current_thread(self) -> None:
        """Let the calling thread call directly from now on (it accepts the
        floating-point side effects); used by localnet's event-loop thread."""
        self._direct.add(threading.get_ident())

    def release_current_thread(self) -> None:
        self._direct.discard(threading.get_ident())

    def call_raw(self, function: Callable[..., Any], *args: Any) -> Any:
        if threading.current_thread() is self._thread or threading.get_ident() in self._direct:
            return function(*args)
        if self._closed:
            raise LocalnetNotRunning("the ledger is closed")
        call = _Call(function, args)
        self._queue.put(call)
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def call(self, function: Callable[[T], Any]) -> Any:
        return self.call_raw(lambda: function(self._target))  # type: ignore[arg-type]

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the thread (idempotent); the object is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, _Call)
            try:
                item.result = item.function(*item.args)
            except BaseException as error:  # noqa: BLE001  (re-raised in the caller's thread)
                item.error = error
            finally:
                item.done.set()


class _Proxy:
    """``proxy.method(*args)`` runs ``target.method(*args)`` on the confined thread."""

    def __init__(self, confined: ThreadConfined[Any]) -> None:
        self._confined = confined

    def __getattr__(self, name: str) -> Callable[..., Any]:
        confined = self._confined

        def method(*args: Any, **kwargs: Any) -> Any:
            return confined.call(lambda target: getattr(target, name)(*args, **kwargs))

        return method
