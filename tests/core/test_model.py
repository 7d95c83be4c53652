"""The command record and its status machine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
import itertools
import re

import pytest

from custom_components.iotee.core.model import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    WLTE_STATUS,
    CommandRecord,
    CommandStatus,
    ErrorCode,
    InvalidTransitionError,
    Transition,
    isoformat_z,
    new_command_id,
    utcnow,
)

T0 = datetime(2025, 12, 17, 10, 30, tzinfo=UTC)

LEGAL = [(old, new) for old, targets in TRANSITIONS.items() for new in sorted(targets)]
ILLEGAL = [
    (old, new)
    for old, new in itertools.product(CommandStatus, CommandStatus)
    if new not in TRANSITIONS[old]
]

# How to reach each status from pending, through legal transitions.
PATH_TO: dict[CommandStatus, tuple[CommandStatus, ...]] = {
    CommandStatus.PENDING: (),
    CommandStatus.PUBLISHED: (CommandStatus.PUBLISHED,),
    CommandStatus.ACKNOWLEDGED: (CommandStatus.PUBLISHED, CommandStatus.ACKNOWLEDGED),
    CommandStatus.COMPLETED: (CommandStatus.PUBLISHED, CommandStatus.COMPLETED),
    CommandStatus.FAILED: (CommandStatus.FAILED,),
    CommandStatus.TIMEOUT: (CommandStatus.TIMEOUT,),
}


def make_record(**overrides: object) -> CommandRecord:
    """Return a fresh pending record."""
    values: dict[str, object] = {
        "command_id": "c1",
        "hardware_id": "hw1",
        "device_type": "tasmota",
        "command": "ON",
        "topic": "cmnd/hw1/POWER1",
        "payload": "ON",
        "created_at": T0,
        "deadline": T0 + timedelta(seconds=10),
        "relay": 1,
    }
    values.update(overrides)
    return CommandRecord(**values)  # type: ignore[arg-type]


def record_in(status: CommandStatus) -> CommandRecord:
    """Return a record brought to ``status`` through legal transitions, one second apart."""
    record = make_record()
    for step, target in enumerate(PATH_TO[status], start=1):
        record.transition(target, T0 + timedelta(seconds=step))
    assert record.status is status
    return record


def test_transition_tables_cover_every_status() -> None:
    assert set(TRANSITIONS) == set(CommandStatus)
    assert set(WLTE_STATUS) == set(CommandStatus)
    assert set(PATH_TO) == set(CommandStatus)
    assert LEGAL
    assert len(LEGAL) + len(ILLEGAL) == len(CommandStatus) ** 2


def test_new_record_starts_pending_with_one_transition() -> None:
    record = make_record()
    assert record.status is CommandStatus.PENDING
    assert record.transitions == [Transition(CommandStatus.PENDING, T0)]
    assert record.updated_at == T0
    assert record.target == ("hw1", "relay:1")
    assert record.transition_at(CommandStatus.PENDING) == T0
    assert record.transition_at(CommandStatus.PUBLISHED) is None


def test_given_transitions_are_kept() -> None:
    history = [Transition(CommandStatus.PENDING, T0), Transition(CommandStatus.PUBLISHED, T0)]
    record = make_record(
        status=CommandStatus.PUBLISHED, transitions=history, updated_at=T0 + timedelta(1)
    )
    assert record.transitions == history
    assert record.updated_at == T0 + timedelta(1)


def test_lock_and_reboot_are_separate_targets() -> None:
    lock = make_record(relay=None, device_type="iotee_device", command="lock")
    reboot = make_record(relay=None, device_type="iotee_device", command="reboot")
    assert lock.target == ("hw1", "lock")
    assert reboot.target == ("hw1", "reboot")


@pytest.mark.parametrize(("old", "new"), LEGAL, ids=str)
def test_legal_transition(old: CommandStatus, new: CommandStatus) -> None:
    record = record_in(old)
    before = list(record.transitions)
    at = T0 + timedelta(minutes=5)

    assert record.transition(new, at) is old

    assert record.status is new
    assert record.updated_at == at
    assert record.transitions == [*before, Transition(new, at)]
    assert record.transition_at(new) == at


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=str)
def test_illegal_transition_raises_and_changes_nothing(
    old: CommandStatus, new: CommandStatus
) -> None:
    record = record_in(old)
    before = (record.status, record.updated_at, list(record.transitions))

    with pytest.raises(InvalidTransitionError, match=f"{old} -> {new}"):
        record.transition(
            new, T0 + timedelta(minutes=5), error_code=ErrorCode.TIMEOUT, error="nope"
        )

    assert (record.status, record.updated_at, record.transitions) == before
    assert record.error_code is None
    assert record.error is None


def test_invalid_transition_is_a_value_error() -> None:
    assert issubclass(InvalidTransitionError, ValueError)


@pytest.mark.parametrize("status", list(CommandStatus), ids=str)
def test_terminal_statuses(status: CommandStatus) -> None:
    expected = status in {CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.TIMEOUT}
    assert status.is_terminal is expected
    assert (status in TERMINAL_STATUSES) is expected
    # Terminal means no way out; non-terminal means at least one.
    assert (not TRANSITIONS[status]) is expected


@pytest.mark.parametrize(
    ("status", "wlte"),
    [
        (CommandStatus.PENDING, "SENT"),
        (CommandStatus.PUBLISHED, "SENT"),
        (CommandStatus.ACKNOWLEDGED, "SENT"),
        (CommandStatus.COMPLETED, "SUCCESS"),
        (CommandStatus.FAILED, "FAILED"),
        (CommandStatus.TIMEOUT, "TIMEOUT"),
    ],
    ids=str,
)
def test_wlte_view(status: CommandStatus, wlte: str) -> None:
    assert status.wlte == wlte


def test_status_values_are_the_api_strings() -> None:
    assert [s.value for s in CommandStatus] == [
        "pending",
        "published",
        "failed",
        "acknowledged",
        "completed",
        "timeout",
    ]
    assert CommandStatus("acknowledged") is CommandStatus.ACKNOWLEDGED


def test_error_code_and_error_are_kept() -> None:
    record = record_in(CommandStatus.PUBLISHED)
    record.transition(
        CommandStatus.FAILED,
        T0 + timedelta(seconds=3),
        error_code=ErrorCode.REJECTED,
        error="relay locked out",
    )
    assert record.error_code == "rejected"
    assert record.error == "relay locked out"


def test_error_is_not_cleared_by_a_later_transition_without_one() -> None:
    record = record_in(CommandStatus.PENDING)
    record.transition(CommandStatus.PUBLISHED, T0, error_code="x", error="first")
    record.transition(CommandStatus.TIMEOUT, T0 + timedelta(seconds=10))
    assert (record.error_code, record.error) == ("x", "first")


def test_error_code_without_error_and_vice_versa() -> None:
    record = record_in(CommandStatus.PUBLISHED)
    record.transition(CommandStatus.TIMEOUT, T0, error_code=ErrorCode.TIMEOUT)
    assert (record.error_code, record.error) == ("timeout", None)
    other = record_in(CommandStatus.PENDING)
    other.transition(CommandStatus.FAILED, T0, error="broker gone")
    assert (other.error_code, other.error) == (None, "broker gone")


def test_late_confirmation_keeps_the_first() -> None:
    record = record_in(CommandStatus.TIMEOUT)
    assert (record.late_confirmation, record.late_confirmation_at) == (None, None)
    first_at = T0 + timedelta(seconds=30)
    record.record_late_confirmation("ON", first_at)
    record.record_late_confirmation("OFF", T0 + timedelta(seconds=40))
    assert record.late_confirmation == "ON"
    assert record.late_confirmation_at == first_at
    # A late confirmation does not change the status.
    assert record.status is CommandStatus.TIMEOUT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2025, 12, 17, 10, 30, tzinfo=UTC), "2025-12-17T10:30:00.000Z"),
        (datetime(2025, 12, 17, 10, 30, 5, 123456, tzinfo=UTC), "2025-12-17T10:30:05.123Z"),
        (datetime(2025, 12, 17, 10, 30, 5, 999999, tzinfo=UTC), "2025-12-17T10:30:05.999Z"),
        (datetime(2025, 1, 2, 3, 4, 5, 1000, tzinfo=UTC), "2025-01-02T03:04:05.001Z"),
        (
            datetime(2025, 12, 17, 12, 30, tzinfo=timezone(timedelta(hours=2))),
            "2025-12-17T10:30:00.000Z",
        ),
        (
            datetime(2025, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5))),
            "2026-01-01T01:00:00.000Z",
        ),
    ],
)
def test_isoformat_z(value: datetime, expected: str) -> None:
    assert isoformat_z(value) == expected


def test_isoformat_z_parses_back() -> None:
    now = utcnow()
    text = isoformat_z(now)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None
    assert abs(parsed - now) < timedelta(milliseconds=1)


def test_utcnow_is_aware_utc() -> None:
    now = utcnow()
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_new_command_id_unique_and_url_safe() -> None:
    """16 hex digits (64 bits), all different; the generator is seeded once per process."""
    ids = [new_command_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    for command_id in ids:
        assert re.fullmatch(r"[0-9a-f]{16}", command_id)
    # Every bit position takes both values: the ids are not a counter with a fixed prefix.
    values = [int(command_id, 16) for command_id in ids[:1000]]
    assert all(any(v >> bit & 1 for v in values) for bit in range(64))
    assert all(any(not v >> bit & 1 for v in values) for bit in range(64))


def test_published_is_final_only_for_a_command_nothing_is_awaited_for() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    record = CommandRecord(
        command_id="c1",
        hardware_id="hw",
        device_type="custom",
        command="ON",
        topic="t",
        payload="ON",
        created_at=created,
        deadline=created,
        relay=1,
    )
    assert not record.awaits_confirmation
    assert not record.finished  # pending: not even sent
    record.transition(CommandStatus.PUBLISHED, created)
    assert record.finished
    waiting = replace(record, deadline=created + timedelta(seconds=10))
    assert waiting.awaits_confirmation
    assert not waiting.finished
