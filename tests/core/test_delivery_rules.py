"""Queue and retry rules (core/delivery_rules.py), without Home Assistant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.iotee.core.delivery_rules import (
    DEFAULT_QUEUE_MINUTES,
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    DeliveryPolicy,
    QueuePolicy,
    RetryPolicy,
    TargetQueue,
    check_attempts,
    check_queue_minutes,
    delivery_policy,
    queue_expiry,
    queue_minutes,
    setting_error,
)
from custom_components.iotee.core.errors import InvalidDeliveryError

RETENTION_DAYS = 90.0


@pytest.mark.parametrize(
    ("request_", "device", "expected"),
    [
        (None, 0.0, None),  # the device does not queue: refused while offline
        (None, 30.0, 30.0),  # entity actions follow the device
        (False, 30.0, None),  # the command says no
        (True, 0.0, DEFAULT_QUEUE_MINUTES),
        (True, 15.0, 15.0),
        (5, 0.0, 5.0),
        (2.5, 30.0, 2.5),
    ],
)
def test_queue_minutes_resolution(
    request_: bool | float | None, device: float, expected: float | None
) -> None:
    assert queue_minutes(request_, QueuePolicy(device), RETENTION_DAYS) == expected


def test_device_default_is_capped_at_the_retention() -> None:
    assert queue_minutes(None, QueuePolicy(10_000.0), 1.0) == 24 * 60
    assert queue_minutes(True, QueuePolicy(10_000.0), 1.0) == 24 * 60


@pytest.mark.parametrize("minutes", [0, -1, 90 * 24 * 60 + 1, float("nan"), float("inf")])
def test_bad_queue_expiry_is_refused(minutes: float) -> None:
    with pytest.raises(InvalidDeliveryError, match="queue expiry"):
        queue_minutes(minutes, QueuePolicy(), RETENTION_DAYS)
    with pytest.raises(InvalidDeliveryError):
        check_queue_minutes(minutes, RETENTION_DAYS)


def test_expiry_at_the_retention_is_accepted() -> None:
    check_queue_minutes(90 * 24 * 60, RETENTION_DAYS)
    now = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
    assert queue_expiry(now, 30) == datetime(2026, 12, 2, 18, 30, tzinfo=UTC)


@pytest.mark.parametrize("attempts", [0, -3, MAX_ATTEMPTS + 1])
def test_bad_attempts_are_refused(attempts: int) -> None:
    with pytest.raises(InvalidDeliveryError, match="attempts"):
        check_attempts(attempts)


def test_attempt_limits_are_accepted() -> None:
    check_attempts(1)
    check_attempts(MAX_ATTEMPTS)


def test_only_idempotent_commands_are_retried_by_default() -> None:
    policy = RetryPolicy(attempts=3)
    assert [policy.retries(c) for c in ("lock", "unlock", "ON", "OFF")] == [True] * 4
    assert not policy.retries("JOG")
    assert not policy.retries("reboot")
    opted_in = RetryPolicy(attempts=3, non_idempotent=True)
    assert opted_in.retries("JOG")
    assert opted_in.retries("reboot")
    assert not RetryPolicy().retries("lock")  # one attempt: no retry at all


def test_backoff_doubles_and_stops_at_the_attempts() -> None:
    policy = RetryPolicy(attempts=4, backoff=1.5)
    assert [policy.next_delay("ON", made) for made in (1, 2, 3, 4)] == [1.5, 3.0, 6.0, None]
    assert policy.next_delay("JOG", 1) is None
    assert RetryPolicy(attempts=10, backoff=500).delay_before(10) == MAX_BACKOFF


def test_policy_from_stored_options() -> None:
    assert delivery_policy({}) == DeliveryPolicy()
    assert delivery_policy(
        {
            "queue_minutes": 45,
            "retry_attempts": 3,
            "retry_backoff": 0.5,
            "retry_non_idempotent": True,
        }
    ) == DeliveryPolicy(QueuePolicy(45.0), RetryPolicy(3, 0.5, non_idempotent=True))


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("queue_minutes", 0, None),
        ("queue_minutes", 120, None),
        ("queue_minutes", -1, "invalid_queue_minutes"),
        ("queue_minutes", "x", "invalid_queue_minutes"),
        ("retry_attempts", 1, None),
        ("retry_attempts", 10, None),
        ("retry_attempts", 11, "invalid_retry_attempts"),
        ("retry_attempts", 2.5, "invalid_retry_attempts"),
        ("retry_attempts", None, "invalid_retry_attempts"),
        ("retry_backoff", 0, None),
        ("retry_backoff", 601, "invalid_retry_backoff"),
        ("something_else", "x", None),
    ],
)
def test_setting_errors(name: str, value: object, error: str | None) -> None:
    assert setting_error(name, value) == error


def test_target_queue_newest_wins_and_keeps_order() -> None:
    queue: TargetQueue[str] = TargetQueue()
    assert queue.put(("a", "lock"), "a1") is None
    assert queue.put(("b", "relay:1"), "b1") is None
    assert queue.put(("a", "relay:1"), "a2") is None
    assert queue.put(("a", "lock"), "a3") == "a1"  # the older one is replaced
    assert len(queue) == 3
    assert queue.get(("a", "lock")) == "a3"
    assert queue.values() == ["b1", "a2", "a3"]
    assert queue.take_device("a") == ["a2", "a3"]
    assert queue.take_device("a") == []
    assert queue.pop(("b", "relay:1")) == "b1"
    assert queue.pop(("b", "relay:1")) is None
    assert len(queue) == 0


def test_queue_expiry_arithmetic_is_plain() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert queue_expiry(now, 0.5) - now == timedelta(seconds=30)
