"""The delivery options as the actions and the device form read them (no broker needed)."""

from __future__ import annotations

import pytest

from custom_components.iotee.device_flow import check_delivery
from custom_components.iotee.services import _queue_option

MAX = 90 * 24 * 60


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (30, 30.0),
        (2.5, 2.5),
        ("true", True),
        (" Off ", False),
        ("15", 15.0),
    ],
)
def test_queue_option_reads_booleans_and_minutes(value: object, expected: bool | float) -> None:
    assert _queue_option(value) == expected
    assert type(_queue_option(value)) is type(expected)


@pytest.mark.parametrize("value", ["soon", None, [1], {"minutes": 3}])
def test_queue_option_refuses_anything_else(value: object) -> None:
    import voluptuous as vol

    with pytest.raises(vol.Invalid):
        _queue_option(value)


def test_check_delivery_keeps_only_what_differs_from_the_defaults() -> None:
    assert check_delivery({}, MAX) == ({}, {})
    assert check_delivery(
        {"queue_minutes": 0, "retry_attempts": 1, "retry_backoff": 2, "retry_non_idempotent": 0},
        MAX,
    ) == ({}, {})
    assert check_delivery({"queue_minutes": 45, "retry_attempts": 4.0}, MAX) == (
        {"queue_minutes": 45.0, "retry_attempts": 4},
        {},
    )


def test_check_delivery_errors() -> None:
    values, errors = check_delivery(
        {"queue_minutes": MAX + 1, "retry_attempts": 0, "retry_backoff": -1}, MAX
    )
    assert values == {}
    assert errors == {
        "queue_minutes": "invalid_queue_minutes",
        "retry_attempts": "invalid_retry_attempts",
        "retry_backoff": "invalid_retry_backoff",
    }
