"""How long the event loop was blocked: a callback that should run every few milliseconds, the
slowest callbacks, and the garbage collector's share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
import gc
import time
from typing import Any


class LoopProbe:
    """Schedules itself every ``interval`` seconds and records how late it ran.

    A stall of ``D`` seconds shows as a lateness between ``D - interval`` and ``D``; the interval
    is kept small (2 ms) so that the error stays small next to the 50 ms target.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.002) -> None:
        """Probe ``loop``; ``start`` begins."""
        self.loop = loop
        self.interval = interval
        self.max_late = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Begin probing."""
        self._due = time.monotonic() + self.interval
        self._handle = self.loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        """Stop probing."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    @property
    def due(self) -> float:
        """Return when the next tick is due (monotonic clock)."""
        return self._due

    def _tick(self) -> None:
        now = time.monotonic()
        self.max_late = max(self.max_late, now - self._due)
        self._due = now + self.interval
        self._handle = self.loop.call_at(self._due, self._tick)

    @contextmanager
    def window(self, into: dict[str, float], key: str) -> Iterator[None]:
        """Record the longest stall while the block runs as ``into[key]`` (milliseconds)."""
        self.max_late = 0.0
        try:
            yield
        finally:
            now = time.monotonic()
            # A stall still going on at the end of the window counts too.
            self.max_late = max(self.max_late, now - self._due)
            into[key] = self.max_late * 1000


def _describe(handle: asyncio.Handle) -> str:
    """Name what a loop callback runs: a task's coroutine, or the callback's qualified name."""
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', repr(coro))}"
    func = getattr(callback, "func", callback)  # functools.partial
    return str(getattr(func, "__qualname__", repr(func)))


class SlowCallbacks:
    """The longest event-loop callbacks while active: what each ran and how long it took.

    Wraps ``asyncio.Handle._run`` (every callback and task step of every loop in the process
    goes through it) with two clock reads; ``top`` keeps the ``keep`` longest.
    """

    def __init__(self, keep: int = 10) -> None:
        """Record nothing until ``start``."""
        self.keep = keep
        self.top: list[tuple[float, str]] = []
        self._floor = 0.0
        self._original: Any = None

    def start(self) -> None:
        """Begin timing callbacks."""
        original = asyncio.Handle._run
        self._original = original
        clock = time.perf_counter

        def timed(handle: asyncio.Handle) -> None:
            started = clock()
            try:
                original(handle)
            finally:
                took = clock() - started
                if took > self._floor:
                    self._add(took, handle)

        asyncio.Handle._run = timed  # type: ignore[method-assign]

    def _add(self, took: float, handle: asyncio.Handle) -> None:
        self.top.append((took, _describe(handle)))
        self.top.sort(reverse=True)
        del self.top[self.keep :]
        if len(self.top) == self.keep:
            self._floor = self.top[-1][0]

    def reset(self) -> None:
        """Forget what was recorded so far."""
        self.top = []
        self._floor = 0.0

    def stop(self) -> None:
        """Stop timing callbacks."""
        if self._original is not None:
            asyncio.Handle._run = self._original  # type: ignore[method-assign]
            self._original = None

    def as_json(self) -> list[dict[str, Any]]:
        """Return the longest callbacks, longest first."""
        return [{"ms": took * 1000, "what": what} for took, what in self.top]


class GcTimes:
    """Counts the garbage collector's runs per generation and the time they take (row 5)."""

    def __init__(self) -> None:
        """Start counting nothing."""
        self.runs = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            generation = int(info["generation"])
            self.runs[generation] += 1
            self.seconds[generation] += time.perf_counter() - self._began

    def start(self) -> None:
        """Count from now."""
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        """Stop counting."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def as_json(self) -> dict[str, Any]:
        """Runs and milliseconds per generation."""
        return {
            "runs": list(self.runs),
            "ms": [round(seconds * 1000, 1) for seconds in self.seconds],
        }
