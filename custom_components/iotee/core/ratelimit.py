"""Rate limits of the WLTE relay API: per caller, per device and a cooldown per relay.

Times are monotonic seconds passed in by the caller (``time.monotonic()`` in production, plain
numbers in tests), so every limit here is deterministic. Nothing here is thread-safe: use the
limiters from one thread (the event loop); ``RelayRateLimiter.acquire`` is atomic there because it
never awaits.

Only accepted operations count. ``acquire`` counts an operation at once (a reservation: concurrent
requests see it, so the limits hold whatever the concurrency); when the operation then fails
before it is accepted (the store cannot be written, say), ``release`` takes exactly that count
back, so the caller's retry finds the budget it had.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
import math

DEFAULT_PER_CALLER: tuple[int, float] = (600, 60.0)
"""At most 600 accepted commands per caller in any 60 s."""
DEFAULT_PER_DEVICE: tuple[int, float] = (10, 10.0)
"""At most 10 accepted commands per device (all relays together) in any 10 s."""
DEFAULT_RELAY_COOLDOWN = 3.0
"""At least 3 s between two accepted commands on one relay."""


class SlidingWindowLimit[K: Hashable]:
    """At most ``limit`` hits per key in any window of ``window`` seconds (a true sliding window).

    A hit at time ``t`` counts against the key until ``t + window``. Only hits are remembered, one
    deque of times per key; a key's deque is dropped as soon as all its hits expired, and a sweep of
    every key runs at most once per window, so keys that are never seen again do not leak.
    """

    __slots__ = ("_hits", "_last_sweep", "limit", "window")

    def __init__(self, limit: int, window: float) -> None:
        """Allow ``limit`` hits (>= 1) per ``window`` seconds (> 0) per key."""
        _check_window(limit, window)
        self.limit = limit
        self.window = window
        self._hits: dict[K, deque[float]] = {}
        self._last_sweep: float | None = None

    def __len__(self) -> int:
        """Return how many keys are currently tracked."""
        return len(self._hits)

    def reconfigure(self, limit: int, window: float) -> None:
        """Change the limit and window, keeping the hits still remembered."""
        _check_window(limit, window)
        self.limit = limit
        self.window = window

    def _live(self, key: K, now: float) -> deque[float] | None:
        """Return the key's unexpired hits (oldest first), dropping expired ones and empty keys."""
        hits = self._hits.get(key)
        if hits is None:
            return None
        horizon = now - self.window
        while hits and hits[0] <= horizon:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    def retry_after(self, key: K, now: float) -> float:
        """Return 0.0 when a hit is allowed at ``now``, else the seconds until one will be."""
        hits = self._live(key, now)
        if hits is None or len(hits) < self.limit:
            return 0.0
        # The hit that must expire so that fewer than ``limit`` remain (the oldest one, unless the
        # limit was lowered since the hits were recorded).
        return hits[len(hits) - self.limit] + self.window - now

    def hit(self, key: K, now: float) -> None:
        """Record a hit on ``key`` at ``now`` (the caller checked ``retry_after`` first)."""
        self._live(key, now)
        self._hits.setdefault(key, deque()).append(now)
        if self._last_sweep is None or now - self._last_sweep >= self.window:
            self.prune(now)

    def unhit(self, key: K, at: float) -> None:
        """Take back one hit recorded on ``key`` at ``at`` (no-op when it is not remembered)."""
        hits = self._hits.get(key)
        if hits is None:
            return
        try:
            hits.remove(at)
        except ValueError:
            return
        if not hits:
            del self._hits[key]

    def prune(self, now: float) -> None:
        """Forget every expired hit and every key left without hits."""
        self._last_sweep = now
        for key in list(self._hits):
            self._live(key, now)


class Cooldown[K: Hashable]:
    """At least ``seconds`` between two hits on one key."""

    __slots__ = ("_last", "_last_sweep", "seconds")

    def __init__(self, seconds: float) -> None:
        """Require ``seconds`` (>= 0) between hits per key."""
        _check_cooldown(seconds)
        self.seconds = seconds
        self._last: dict[K, float] = {}
        self._last_sweep: float | None = None

    def __len__(self) -> int:
        """Return how many keys are currently tracked."""
        return len(self._last)

    def reconfigure(self, seconds: float) -> None:
        """Change the cooldown, keeping the remembered last hits."""
        _check_cooldown(seconds)
        self.seconds = seconds

    def retry_after(self, key: K, now: float) -> float:
        """Return the cooldown left on ``key`` at ``now`` (0.0 when a hit is allowed)."""
        last = self._last.get(key)
        if last is None:
            return 0.0
        remaining = last + self.seconds - now
        if remaining <= 0:
            del self._last[key]
            return 0.0
        return remaining

    def hit(self, key: K, now: float) -> None:
        """Record a hit on ``key`` at ``now``."""
        self._last[key] = now
        if self._last_sweep is None or now - self._last_sweep >= self.seconds:
            self.prune(now)

    def unhit(self, key: K, at: float) -> None:
        """Take back the hit on ``key`` at ``at``, if it is still the last one.

        A hit is only recorded once the previous one's cooldown is over, so without it the key
        has no cooldown running: forgetting the key restores exactly that.
        """
        if self._last.get(key) == at:
            del self._last[key]

    def prune(self, now: float) -> None:
        """Forget every key whose cooldown is over."""
        self._last_sweep = now
        for key in list(self._last):
            self.retry_after(key, now)


class RelayRateLimiter:
    """The WLTE relay API limits: per caller, per device (all relays) and a per-relay cooldown."""

    __slots__ = ("per_caller", "per_device", "relay_cooldown")

    def __init__(
        self,
        per_caller: tuple[int, float] = DEFAULT_PER_CALLER,
        per_device: tuple[int, float] = DEFAULT_PER_DEVICE,
        relay_cooldown: float = DEFAULT_RELAY_COOLDOWN,
    ) -> None:
        """Set the limits: ``(count, window seconds)`` per caller and per device, a cooldown."""
        self.per_caller: SlidingWindowLimit[str] = SlidingWindowLimit(*per_caller)
        self.per_device: SlidingWindowLimit[str] = SlidingWindowLimit(*per_device)
        self.relay_cooldown: Cooldown[tuple[str, int]] = Cooldown(relay_cooldown)

    def reconfigure(
        self,
        per_caller: tuple[int, float] | None = None,
        per_device: tuple[int, float] | None = None,
        relay_cooldown: float | None = None,
    ) -> None:
        """Change the given limits (None keeps one), keeping the history of accepted commands."""
        # Validate everything before changing anything.
        if per_caller is not None:
            _check_window(*per_caller)
        if per_device is not None:
            _check_window(*per_device)
        if relay_cooldown is not None:
            _check_cooldown(relay_cooldown)
        if per_caller is not None:
            self.per_caller.reconfigure(*per_caller)
        if per_device is not None:
            self.per_device.reconfigure(*per_device)
        if relay_cooldown is not None:
            self.relay_cooldown.reconfigure(relay_cooldown)

    def acquire(self, caller: str, device: str, relay: int, now: float) -> float:
        """Admit a command on ``device``'s ``relay`` from ``caller`` at ``now``.

        Return 0.0 and count the command against all three limits when every limit allows it;
        otherwise count nothing and return the seconds to wait (the longest of the refusals).
        """
        wait = max(
            self.per_caller.retry_after(caller, now),
            self.per_device.retry_after(device, now),
            self.relay_cooldown.retry_after((device, relay), now),
        )
        if wait > 0:
            return wait
        self.per_caller.hit(caller, now)
        self.per_device.hit(device, now)
        self.relay_cooldown.hit((device, relay), now)
        return 0.0

    def release(self, caller: str, device: str, relay: int, at: float) -> None:
        """Take back a command ``acquire`` admitted at ``at`` that was not accepted after all."""
        self.per_caller.unhit(caller, at)
        self.per_device.unhit(device, at)
        self.relay_cooldown.unhit((device, relay), at)


def retry_after_header(seconds: float) -> int:
    """Return whole seconds for ``Retry-After`` and ``retryAfterSeconds``: rounded up, at least 1.

    The value is rounded to the microsecond first so float noise (2.0000000001) does not add a
    second.
    """
    if math.isnan(seconds):
        return 1
    return max(1, math.ceil(round(seconds, 6)))


def _check_window(limit: int, window: float) -> None:
    if limit < 1:
        raise ValueError(f"a rate limit must allow at least one hit, not {limit}")
    if not window > 0:
        raise ValueError(f"a rate limit window must be positive, not {window}")


def _check_cooldown(seconds: float) -> None:
    if not seconds >= 0:
        raise ValueError(f"a cooldown cannot be negative, not {seconds}")
