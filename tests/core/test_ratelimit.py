"""Rate limits of the WLTE relay API."""

from __future__ import annotations

import pytest

from custom_components.iotee.core.ratelimit import (
    Cooldown,
    RelayRateLimiter,
    SlidingWindowLimit,
    retry_after_header,
)

# --- SlidingWindowLimit ----------------------------------------------------------------------


def test_sliding_window_exact_retry_after() -> None:
    limit: SlidingWindowLimit[str] = SlidingWindowLimit(10, 10.0)
    for t in range(10):
        assert limit.retry_after("k", float(t)) == 0.0
        limit.hit("k", float(t))
    assert limit.retry_after("k", 9.5) == 0.5
    assert limit.retry_after("k", 9.75) == 0.25
    # At t=10 the hit at t=0 left the window: allowed again.
    assert limit.retry_after("k", 10.0) == 0.0
    limit.hit("k", 10.0)
    # Sliding, not fixed: the next slot frees when the hit at t=1 leaves, at t=11.
    assert limit.retry_after("k", 10.0) == 1.0
    assert limit.retry_after("k", 10.5) == 0.5
    assert limit.retry_after("k", 11.0) == 0.0


def test_sliding_window_is_not_a_fixed_window() -> None:
    """A burst at the end of one window and the start of the next is still limited."""
    limit: SlidingWindowLimit[str] = SlidingWindowLimit(3, 10.0)
    for t in (8.0, 9.0, 9.5):
        limit.hit("k", t)
    # A fixed 0-10/10-20 window would allow this; a sliding one waits for t=18.
    assert limit.retry_after("k", 10.5) == 7.5
    assert limit.retry_after("k", 18.0) == 0.0


def test_sliding_window_keys_are_independent() -> None:
    limit: SlidingWindowLimit[str] = SlidingWindowLimit(1, 5.0)
    limit.hit("a", 0.0)
    assert limit.retry_after("a", 1.0) == 4.0
    assert limit.retry_after("b", 1.0) == 0.0


def test_sliding_window_prunes_on_access() -> None:
    limit: SlidingWindowLimit[str] = SlidingWindowLimit(2, 5.0)
    limit.hit("a", 0.0)
    limit.hit("a", 1.0)
    assert len(limit) == 1
    assert limit.retry_after("a", 6.0) == 0.0
    # Every hit expired: the key is gone, not kept as an empty deque.
    assert len(limit) == 0


def test_sliding_window_sweeps_keys_never_seen_again() -> None:
    limit: SlidingWindowLimit[str] = SlidingWindowLimit(5, 10.0)
    for i in range(1000):
        limit.hit(f"caller-{i}", i * 0.001)
    assert len(limit) == 1000
    # Much later, a hit on another key sweeps the expired ones away.
    limit.hit("late", 100.0)
    assert len(limit) == 1
    assert limit.retry_after("late", 100.0) == 0.0


def test_sliding_window_memory_is_bounded_by_the_window() -> None:
    limit: SlidingWindowLimit[int] = SlidingWindowLimit(1000, 1.0)
    for i in range(100_000):
        now = i * 0.01
        limit.hit(i % 7, now)
    # Only hits within the last second (100 of them over 7 keys) can be remembered.
    remembered = sum(len(hits) for hits in limit._hits.values())
    assert remembered <= 101 + 7


def test_sliding_window_reconfigure_keeps_history() -> None:
    limit: SlidingWindowLimit[str] = SlidingWindowLimit(5, 10.0)
    for t in range(4):
        limit.hit("k", float(t))
    assert limit.retry_after("k", 4.0) == 0.0
    limit.reconfigure(2, 10.0)
    # Four hits remembered, two allowed: wait until only one is left (the t=2 hit expires).
    assert limit.retry_after("k", 4.0) == 8.0
    limit.reconfigure(10, 20.0)
    assert limit.retry_after("k", 4.0) == 0.0
    assert (limit.limit, limit.window) == (10, 20.0)


@pytest.mark.parametrize(("count", "window"), [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -2.0)])
def test_sliding_window_rejects_bad_limits(count: int, window: float) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        SlidingWindowLimit(count, window)
    limit: SlidingWindowLimit[str] = SlidingWindowLimit(1, 1.0)
    with pytest.raises(ValueError, match="rate limit"):
        limit.reconfigure(count, window)
    assert (limit.limit, limit.window) == (1, 1.0)


# --- Cooldown --------------------------------------------------------------------------------


def test_cooldown() -> None:
    cooldown: Cooldown[str] = Cooldown(3.0)
    assert cooldown.retry_after("r", 0.0) == 0.0
    cooldown.hit("r", 1.0)
    assert cooldown.retry_after("r", 1.0) == 3.0
    assert cooldown.retry_after("r", 2.5) == 1.5
    assert cooldown.retry_after("other", 2.5) == 0.0
    assert cooldown.retry_after("r", 4.0) == 0.0
    assert len(cooldown) == 0


def test_cooldown_sweeps_old_keys() -> None:
    cooldown: Cooldown[int] = Cooldown(3.0)
    for i in range(500):
        cooldown.hit(i, i * 0.001)
    assert len(cooldown) == 500
    cooldown.hit(-1, 50.0)
    assert len(cooldown) == 1


def test_zero_cooldown_allows_everything() -> None:
    cooldown: Cooldown[str] = Cooldown(0.0)
    cooldown.hit("r", 1.0)
    assert cooldown.retry_after("r", 1.0) == 0.0
    assert len(cooldown) == 0


def test_cooldown_reconfigure_keeps_history() -> None:
    cooldown: Cooldown[str] = Cooldown(3.0)
    cooldown.hit("r", 0.0)
    cooldown.reconfigure(5.0)
    assert cooldown.retry_after("r", 4.0) == 1.0
    with pytest.raises(ValueError, match="cooldown"):
        cooldown.reconfigure(-1.0)
    with pytest.raises(ValueError, match="cooldown"):
        Cooldown(-0.5)
    assert cooldown.seconds == 5.0


# --- RelayRateLimiter ------------------------------------------------------------------------


def test_defaults() -> None:
    limiter = RelayRateLimiter()
    assert (limiter.per_caller.limit, limiter.per_caller.window) == (600, 60.0)
    assert (limiter.per_device.limit, limiter.per_device.window) == (10, 10.0)
    assert limiter.relay_cooldown.seconds == 3.0


def test_relay_cooldown_per_relay() -> None:
    limiter = RelayRateLimiter()
    assert limiter.acquire("c", "dev", 1, 0.0) == 0.0
    assert limiter.acquire("c", "dev", 1, 1.0) == 2.0
    # Other relays, and the same relay number on another device, are not cooling down.
    assert limiter.acquire("c", "dev", 2, 1.0) == 0.0
    assert limiter.acquire("c", "dev2", 1, 1.0) == 0.0
    assert limiter.acquire("c", "dev", 1, 2.5) == 0.5
    assert limiter.acquire("c", "dev", 1, 3.0) == 0.0


def test_refusal_records_nothing() -> None:
    limiter = RelayRateLimiter(relay_cooldown=3.0)
    assert limiter.acquire("c", "dev", 1, 0.0) == 0.0
    # Hammering a cooling relay does not extend its cooldown...
    for t in (0.5, 1.0, 1.5, 2.0, 2.5, 2.9):
        assert limiter.acquire("c", "dev", 1, t) > 0
    assert limiter.acquire("c", "dev", 1, 3.0) == 0.0
    # ...nor does it count against the device or the caller.
    assert len(limiter.per_device._hits["dev"]) == 2
    assert len(limiter.per_caller._hits["c"]) == 2


def test_refusal_does_not_extend_the_window() -> None:
    limiter = RelayRateLimiter(per_device=(2, 10.0), relay_cooldown=0.0)
    assert limiter.acquire("c", "dev", 1, 0.0) == 0.0
    assert limiter.acquire("c", "dev", 2, 1.0) == 0.0
    for t in range(2, 10):
        assert limiter.acquire("c", "dev", 3, float(t)) == 10.0 - t
    # Refused attempts did not count: the slot freed by the t=0 hit is there at t=10.
    assert limiter.acquire("c", "dev", 3, 10.0) == 0.0


def test_per_device_limit_across_relays() -> None:
    limiter = RelayRateLimiter()
    for relay in range(10):
        assert limiter.acquire("c", "dev", relay, relay * 0.1) == 0.0
    # An 11th command on a fresh relay: refused until the first leaves the 10 s window.
    assert limiter.acquire("c", "dev", 10, 1.0) == pytest.approx(9.0)
    assert limiter.acquire("other-caller", "dev", 11, 1.0) == pytest.approx(9.0)
    # Another device is not affected.
    assert limiter.acquire("c", "dev2", 0, 1.0) == 0.0
    assert limiter.acquire("c", "dev", 10, 10.0) == 0.0


def test_per_caller_limit_across_devices() -> None:
    limiter = RelayRateLimiter(per_caller=(5, 60.0))
    for i in range(5):
        assert limiter.acquire("c", f"dev{i}", 1, float(i)) == 0.0
    assert limiter.acquire("c", "dev9", 1, 10.0) == 50.0
    # Another caller is not affected.
    assert limiter.acquire("c2", "dev9", 1, 10.0) == 0.0
    assert limiter.acquire("c", "dev8", 1, 60.0) == 0.0


def test_longest_refusal_wins() -> None:
    limiter = RelayRateLimiter(per_caller=(1, 60.0), per_device=(1, 10.0), relay_cooldown=3.0)
    assert limiter.acquire("c", "dev", 1, 0.0) == 0.0
    # Cooldown says 2, device says 9, caller says 59: the caller's limit decides.
    assert limiter.acquire("c", "dev", 1, 1.0) == 59.0
    # Another caller on the same relay: device says 9, cooldown 2.
    assert limiter.acquire("c2", "dev", 1, 1.0) == 9.0
    # Another caller on another relay of the device: device says 9.
    assert limiter.acquire("c2", "dev", 2, 1.0) == 9.0
    # Another caller on another device: allowed.
    assert limiter.acquire("c2", "dev2", 1, 1.0) == 0.0


def test_refused_by_one_limit_counts_on_none() -> None:
    limiter = RelayRateLimiter(per_caller=(2, 60.0), per_device=(10, 10.0), relay_cooldown=3.0)
    assert limiter.acquire("c", "dev", 1, 0.0) == 0.0
    # Refused by the relay cooldown only: the caller's second slot must stay free.
    assert limiter.acquire("c", "dev", 1, 1.0) == 2.0
    assert limiter.acquire("c", "dev", 2, 1.0) == 0.0
    assert limiter.acquire("c", "dev", 3, 1.0) == 59.0


def test_release_takes_back_exactly_one_admission() -> None:
    """A command admitted but not accepted after all gives every limit its slot back."""
    limiter = RelayRateLimiter(per_caller=(2, 60.0), per_device=(2, 10.0), relay_cooldown=3.0)
    assert limiter.acquire("c", "dev", 1, 0.0) == 0.0
    assert limiter.acquire("c", "dev", 2, 1.0) == 0.0
    limiter.release("c", "dev", 2, 1.0)
    # Relay 2 is not cooling down, and the device and caller have their second slot again.
    assert limiter.acquire("c", "dev", 2, 1.5) == 0.0
    # The accepted command at t=0 still counts everywhere.
    assert limiter.acquire("c", "dev", 1, 2.0) == 58.0
    assert limiter.acquire("c2", "dev", 3, 2.0) == 8.0


def test_release_keeps_other_admissions() -> None:
    """Releasing one admission leaves others (same caller, device, even the same moment) alone."""
    limiter = RelayRateLimiter(per_caller=(3, 60.0), per_device=(3, 10.0), relay_cooldown=3.0)
    assert limiter.acquire("c", "dev", 1, 0.0) == 0.0
    assert limiter.acquire("c", "dev", 2, 0.0) == 0.0
    limiter.release("c", "dev", 2, 0.0)
    assert len(limiter.per_caller._hits["c"]) == 1
    assert len(limiter.per_device._hits["dev"]) == 1
    assert limiter.relay_cooldown.retry_after(("dev", 1), 1.0) == 2.0
    # Releasing what is not (or no longer) counted changes nothing.
    limiter.release("c", "dev", 2, 0.0)
    limiter.release("other", "dev9", 7, 5.0)
    assert limiter.acquire("c", "dev", 1, 1.0) == 2.0
    # A stale release does not cancel the cooldown of a later admission on the relay.
    assert limiter.acquire("c", "dev", 1, 100.0) == 0.0
    limiter.release("c", "dev", 1, 0.0)
    assert limiter.relay_cooldown.retry_after(("dev", 1), 101.0) == 2.0


def test_reconfigure_keeps_history() -> None:
    limiter = RelayRateLimiter()
    for relay in range(5):
        assert limiter.acquire("c", "dev", relay, 0.0) == 0.0
    limiter.reconfigure(per_device=(5, 20.0))
    assert limiter.acquire("c", "dev", 9, 1.0) == 19.0
    limiter.reconfigure(relay_cooldown=10.0)
    assert limiter.relay_cooldown.retry_after(("dev", 0), 1.0) == 9.0
    limiter.reconfigure(per_caller=(5, 60.0))
    assert limiter.per_caller.retry_after("c", 1.0) == 59.0
    assert (limiter.per_device.limit, limiter.per_device.window) == (5, 20.0)


def test_reconfigure_validates_before_changing() -> None:
    limiter = RelayRateLimiter()
    with pytest.raises(ValueError, match="cooldown"):
        limiter.reconfigure(per_caller=(1, 1.0), per_device=(1, 1.0), relay_cooldown=-1.0)
    assert limiter.per_caller.limit == 600
    assert limiter.per_device.limit == 10
    with pytest.raises(ValueError, match="rate limit"):
        limiter.reconfigure(per_caller=(0, 1.0))
    with pytest.raises(ValueError, match="rate limit"):
        limiter.reconfigure(per_device=(1, 0.0))


def test_limiter_memory_is_pruned() -> None:
    limiter = RelayRateLimiter()
    for i in range(300):
        limiter.acquire(f"c{i}", f"dev{i}", i, i * 0.01)
    assert len(limiter.per_caller) == 300
    assert len(limiter.per_device) == 300
    assert len(limiter.relay_cooldown) == 300
    limiter.acquire("x", "y", 1, 1000.0)
    assert (len(limiter.per_caller), len(limiter.per_device), len(limiter.relay_cooldown)) == (
        1,
        1,
        1,
    )


# --- retry_after_header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "header"),
    [
        (0.0, 1),
        (-3.0, 1),
        (0.001, 1),
        (0.5, 1),
        (1.0, 1),
        (1.000002, 2),
        (1.0000000001, 1),
        (2.0000000001, 2),
        (2.5, 3),
        (59.0, 59),
        (59.2, 60),
        (float("nan"), 1),
    ],
)
def test_retry_after_header(seconds: float, header: int) -> None:
    value = retry_after_header(seconds)
    assert value == header
    assert type(value) is int


def test_retry_after_header_from_a_refusal() -> None:
    limiter = RelayRateLimiter()
    limiter.acquire("c", "dev", 1, 100.1)
    wait = limiter.acquire("c", "dev", 1, 100.2)
    assert wait == pytest.approx(2.9)
    assert retry_after_header(wait) == 3
