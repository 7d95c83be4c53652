"""One worker thread that runs calls in order and answers each on its caller's event loop.

The store's every call goes to one thread (SQLite connections are used from one thread). Asyncio's
``run_in_executor`` with a one-thread ``ThreadPoolExecutor`` does that too, but each call also
builds a ``concurrent.futures.Future`` (with its condition and lock), a work item, and a chain of
callbacks copying its outcome to an asyncio future. Here a call is one queue put and its
outcome one ``call_soon_threadsafe``: ``python -m bench.insert_latency`` measured the bare round
trip at 93-113 us with the executor and 44-67 us with this (docs/performance.md, Tracking cost).
The thread never touches an asyncio future itself (only the loop's own thread may).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import queue
import threading
from typing import Any
import weakref

type _Call = tuple[
    asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]
]


class WorkerStoppedError(RuntimeError):
    """A call came after ``async_stop``: nothing runs it."""


_RUNNING: weakref.WeakSet[Worker] = weakref.WeakSet()
"""Workers whose thread runs (each stays alive while its thread does)."""


def _stop_all_at_exit() -> None:
    """The interpreter is exiting: let every worker finish its queue, then end.

    Python joins every thread not a daemon before it exits, and a worker never stopped would
    wait for its next call forever: the process would never end. ``concurrent.futures`` ends
    its executors' threads the same way, through the same hook, which runs before that join.
    (Home Assistant replaces that join with its own, which gives up after a timeout and runs
    no such hook; there the store stops its worker when the hub stops.)
    """
    for worker in list(_RUNNING):
        worker._stopped = True
        worker._calls.put(None)


threading._register_atexit(_stop_all_at_exit)  # type: ignore[attr-defined]


class Worker:
    """Run calls on one thread of our own, strictly in the order they were submitted."""

    def __init__(self, name: str) -> None:
        """Prepare the thread ``name``; it starts with the first call."""
        self.name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit[T](self, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``func(*args)`` on the thread after every call submitted before; return the
        future of its outcome, on the running event loop."""
        if self._stopped:
            raise WorkerStoppedError(f"{self.name} is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name=self.name)
            self._thread.start()
            _RUNNING.add(self)
        self._calls.put((loop, future, func, args))
        return future

    async def async_stop(self) -> None:
        """Let the calls submitted so far run, then end the thread and wait for it (off the
        event loop). Later calls raise ``WorkerStoppedError``.

        Called on the loop, like ``submit``: no call can slip in behind the end of the queue.
        """
        self._stopped = True
        thread = self._thread
        if thread is None:
            return
        self._calls.put(None)
        await asyncio.to_thread(thread.join)

    def _main(self) -> None:
        get = self._calls.get
        while (call := get()) is not None:
            _run(*call)
            del call  # nothing of a finished call stays referenced while the thread waits


def _run(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    func: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    """Run one call on the worker thread and send its outcome to its loop."""
    try:
        result = func(*args)
    except BaseException as err:  # every outcome goes to its caller, as an executor's does
        _answer(loop, _set_exception, future, err)
    else:
        _answer(loop, _set_result, future, result)


def _answer(
    loop: asyncio.AbstractEventLoop,
    settle: Callable[[asyncio.Future[Any], Any], None],
    future: asyncio.Future[Any],
    outcome: Any,
) -> None:
    """Hand ``outcome`` to ``future`` on its loop (gone: nobody is waiting any more)."""
    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
        loop.call_soon_threadsafe(settle, future, outcome)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.cancelled():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], err: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(err)
