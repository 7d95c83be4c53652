"""How long the event loop was blocked: a callback that should run every few milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
import time


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
