"""Confirmation matching for every command of every device type."""

from __future__ import annotations

import json

import pytest

from custom_components.iotee.core.device_types import (
    DEVICE_TYPES,
    IOTEE_DEVICE,
    TASMOTA,
    WLTE_RELAY,
    CommandSpec,
    ResultConfirmation,
    SequenceConfirmation,
    render,
)
from custom_components.iotee.core.matcher import (
    RESULT_STATUSES,
    ConfirmationMatcher,
    Verdict,
    parse_result,
)
from custom_components.iotee.core.model import CommandStatus, ErrorCode

ACK = Verdict(CommandStatus.ACKNOWLEDGED)
DONE = Verdict(CommandStatus.COMPLETED)

OWN_TYPES = ("iotee_device", "wlte_relay", "tasmota")
"""The contracts of this project's first types; the families have tests of their own
(tests/core/test_families.py)."""
ALL_COMMANDS = [
    (type_name, name, spec)
    for type_name, device_type in DEVICE_TYPES.items()
    if type_name in OWN_TYPES
    for name, spec in device_type.commands.items()
]
SEQUENCE_COMMANDS = [
    item for item in ALL_COMMANDS if isinstance(item[2].confirmation, SequenceConfirmation)
]
RESULT_COMMANDS = [
    item for item in ALL_COMMANDS if isinstance(item[2].confirmation, ResultConfirmation)
]


def ids(item: tuple[str, str, CommandSpec]) -> str:
    """Name a parametrized command ``type/command``."""
    return f"{item[0]}/{item[1]}"


def matcher_for(spec: CommandSpec, command_id: str = "cmd-1") -> ConfirmationMatcher:
    """Return a matcher for ``spec`` on device ``dev1`` relay 2."""
    topic = render(spec.confirmation.topic, mqtt_id="dev1", relay=2, command_id=command_id)
    return ConfirmationMatcher(command_id, spec.confirmation, topic)


def test_every_device_type_command_is_covered() -> None:
    assert {(t, c) for t, c, _ in ALL_COMMANDS} == {
        ("iotee_device", "lock"),
        ("iotee_device", "unlock"),
        ("iotee_device", "reboot"),
        ("wlte_relay", "ON"),
        ("wlte_relay", "OFF"),
        ("wlte_relay", "JOG"),
        ("tasmota", "ON"),
        ("tasmota", "OFF"),
        ("tasmota", "JOG"),
        ("tasmota", "reboot"),
    }
    assert {(t, c) for t, c, _ in RESULT_COMMANDS} == {
        ("wlte_relay", "ON"),
        ("wlte_relay", "OFF"),
        ("wlte_relay", "JOG"),
    }


@pytest.mark.parametrize(
    ("spec", "topic", "sequence"),
    [
        (IOTEE_DEVICE.commands["lock"], "iotee/dev/dev1/rls/state", ["1"]),
        (IOTEE_DEVICE.commands["unlock"], "iotee/dev/dev1/rls/state", ["0"]),
        (IOTEE_DEVICE.commands["reboot"], "iotee/dev/dev1/status", ["offline", "online"]),
        (TASMOTA.commands["ON"], "stat/dev1/POWER2", ["ON"]),
        (TASMOTA.commands["OFF"], "stat/dev1/POWER2", ["OFF"]),
        (TASMOTA.commands["JOG"], "stat/dev1/POWER2", ["ON", "OFF"]),
        (TASMOTA.commands["reboot"], "tele/dev1/LWT", ["Offline", "Online"]),
    ],
    ids=["lock", "unlock", "iotee-reboot", "tasmota-ON", "tasmota-OFF", "tasmota-JOG", "t-reboot"],
)
def test_sequence_topics_and_payloads(spec: CommandSpec, topic: str, sequence: list[str]) -> None:
    matcher = matcher_for(spec)
    assert matcher.topic == topic
    assert isinstance(spec.confirmation, SequenceConfirmation)
    assert list(spec.confirmation.payloads) == sequence


@pytest.mark.parametrize("item", SEQUENCE_COMMANDS, ids=ids)
def test_sequence_completes(item: tuple[str, str, CommandSpec]) -> None:
    _, _, spec = item
    assert isinstance(spec.confirmation, SequenceConfirmation)
    payloads = spec.confirmation.payloads
    matcher = matcher_for(spec)
    verdicts = [matcher.feed(payload, retained=False) for payload in payloads]
    assert verdicts == [ACK] * (len(payloads) - 1) + [DONE]


@pytest.mark.parametrize("item", SEQUENCE_COMMANDS, ids=ids)
def test_sequence_ignores_whitespace_around_payload(item: tuple[str, str, CommandSpec]) -> None:
    _, _, spec = item
    assert isinstance(spec.confirmation, SequenceConfirmation)
    matcher = matcher_for(spec)
    verdicts = [matcher.feed(f" {p}\n", retained=False) for p in spec.confirmation.payloads]
    assert verdicts[-1] == DONE


@pytest.mark.parametrize("item", SEQUENCE_COMMANDS, ids=ids)
def test_retained_never_confirms_sequence(item: tuple[str, str, CommandSpec]) -> None:
    _, _, spec = item
    assert isinstance(spec.confirmation, SequenceConfirmation)
    matcher = matcher_for(spec)
    for payload in spec.confirmation.payloads:
        assert matcher.feed(payload, retained=True) is None
    # The retained messages did not advance the sequence: live ones still confirm from the start.
    verdicts = [matcher.feed(p, retained=False) for p in spec.confirmation.payloads]
    assert verdicts[-1] == DONE


@pytest.mark.parametrize("item", SEQUENCE_COMMANDS, ids=ids)
def test_wrong_payloads_are_ignored(item: tuple[str, str, CommandSpec]) -> None:
    _, _, spec = item
    assert isinstance(spec.confirmation, SequenceConfirmation)
    matcher = matcher_for(spec)
    expected = spec.confirmation.payloads
    wrong = ["", "garbage", '{"state": "ON"}', "on" if expected[0] != "on" else "ON"]
    for step, payload in enumerate(expected):
        for other in wrong:
            assert matcher.feed(other, retained=False) is None
        want = DONE if step == len(expected) - 1 else ACK
        assert matcher.feed(payload, retained=False) == want


def test_payload_match_is_case_sensitive() -> None:
    matcher = matcher_for(TASMOTA.commands["reboot"])
    assert matcher.feed("offline", retained=False) is None
    assert matcher.feed("Offline", retained=False) == ACK
    assert matcher.feed("online", retained=False) is None
    assert matcher.feed("Online", retained=False) == DONE


def test_iotee_reboot_offline_acknowledges_online_completes() -> None:
    matcher = matcher_for(IOTEE_DEVICE.commands["reboot"])
    # "online" before the device went offline is the old state, not the reboot.
    assert matcher.feed("online", retained=False) is None
    assert matcher.feed("offline", retained=False) == ACK
    # A repeated "offline" says nothing new.
    assert matcher.feed("offline", retained=False) is None
    assert matcher.feed("online", retained=False) == DONE


def test_tasmota_jog_on_acknowledges_off_completes() -> None:
    matcher = matcher_for(TASMOTA.commands["JOG"])
    assert matcher.feed("OFF", retained=False) is None
    assert matcher.feed("ON", retained=False) == ACK
    assert matcher.feed("ON", retained=False) is None
    assert matcher.feed("OFF", retained=False) == DONE


def test_lock_opposite_state_is_ignored() -> None:
    matcher = matcher_for(IOTEE_DEVICE.commands["lock"])
    assert matcher.feed("0", retained=False) is None
    assert matcher.feed("1", retained=False) == DONE


@pytest.mark.parametrize("item", SEQUENCE_COMMANDS, ids=ids)
def test_messages_after_completion_say_nothing(item: tuple[str, str, CommandSpec]) -> None:
    _, _, spec = item
    assert isinstance(spec.confirmation, SequenceConfirmation)
    matcher = matcher_for(spec)
    for payload in spec.confirmation.payloads:
        matcher.feed(payload, retained=False)
    for payload in spec.confirmation.payloads:
        assert matcher.feed(payload, retained=False) is None


# --- WLTE results ----------------------------------------------------------------------------


def result(command_id: str = "cmd-1", status: str = "SUCCESS", **extra: object) -> str:
    """Return a WLTE result message."""
    return json.dumps({"id": command_id, "status": status, **extra})


def test_wlte_topics() -> None:
    spec = WLTE_RELAY.commands["JOG"]
    assert render(spec.topic, mqtt_id="dev1", relay=2) == "wlte/dev1/relay/2/set"
    assert matcher_for(spec).topic == "wlte/dev1/relay/2/result"
    payload = render(spec.payload, mqtt_id="dev1", relay=2, command_id="cmd-1", action="JOG")
    assert json.loads(payload) == {"id": "cmd-1", "action": "JOG"}


@pytest.mark.parametrize("item", RESULT_COMMANDS, ids=ids)
@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("ACK", ACK),
        ("SUCCESS", DONE),
        ("success", DONE),
        (
            "FAILED",
            Verdict(CommandStatus.FAILED, ErrorCode.DEVICE_FAILED, "device answered FAILED"),
        ),
        (
            "REJECTED",
            Verdict(CommandStatus.FAILED, ErrorCode.REJECTED, "device answered REJECTED"),
        ),
    ],
)
def test_wlte_result_statuses(
    item: tuple[str, str, CommandSpec], status: str, verdict: Verdict
) -> None:
    matcher = matcher_for(item[2])
    assert matcher.feed(result(status=status), retained=False) == verdict


@pytest.mark.parametrize("item", RESULT_COMMANDS, ids=ids)
def test_wlte_ack_then_success(item: tuple[str, str, CommandSpec]) -> None:
    matcher = matcher_for(item[2])
    assert matcher.feed(result(status="ACK"), retained=False) == ACK
    assert matcher.feed(result(status="SUCCESS"), retained=False) == DONE


def test_wlte_rejected_keeps_reason() -> None:
    matcher = matcher_for(WLTE_RELAY.commands["ON"])
    verdict = matcher.feed(result(status="REJECTED", reason="interlock active"), retained=False)
    assert verdict == Verdict(CommandStatus.FAILED, ErrorCode.REJECTED, "interlock active")


def test_wlte_failed_keeps_reason() -> None:
    matcher = matcher_for(WLTE_RELAY.commands["OFF"])
    verdict = matcher.feed(result(status="FAILED", reason="coil open"), retained=False)
    assert verdict == Verdict(CommandStatus.FAILED, ErrorCode.DEVICE_FAILED, "coil open")


def test_wlte_success_has_no_error_even_with_reason() -> None:
    matcher = matcher_for(WLTE_RELAY.commands["ON"])
    assert matcher.feed(result(status="SUCCESS", reason="fine"), retained=False) == DONE


@pytest.mark.parametrize("item", RESULT_COMMANDS, ids=ids)
@pytest.mark.parametrize("status", ["ACK", "SUCCESS", "FAILED", "REJECTED"])
def test_wlte_retained_never_confirms(item: tuple[str, str, CommandSpec], status: str) -> None:
    matcher = matcher_for(item[2])
    assert matcher.feed(result(status=status), retained=True) is None


@pytest.mark.parametrize("status", ["ACK", "SUCCESS", "FAILED", "REJECTED"])
def test_wlte_other_command_id_ignored(status: str) -> None:
    matcher = matcher_for(WLTE_RELAY.commands["ON"], command_id="cmd-1")
    assert matcher.feed(result("cmd-2", status), retained=False) is None
    assert matcher.feed(result("CMD-1", status), retained=False) is None
    assert matcher.feed(json.dumps({"status": status}), retained=False) is None


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "garbage",
        "SUCCESS",
        "{not json",
        "null",
        "42",
        '"cmd-1"',
        '["cmd-1", "SUCCESS"]',
        '[{"id": "cmd-1", "status": "SUCCESS"}]',
    ],
)
def test_wlte_garbage_ignored(payload: str) -> None:
    matcher = matcher_for(WLTE_RELAY.commands["ON"])
    assert matcher.feed(payload, retained=False) is None
    # The matcher still works afterwards.
    assert matcher.feed(result(), retained=False) == DONE


@pytest.mark.parametrize(
    "extra",
    [
        {"status": "DONE"},
        {"status": ""},
        {"status": None},
        {"status": 1},
        {},
    ],
)
def test_wlte_unknown_status_ignored(extra: dict[str, object]) -> None:
    matcher = matcher_for(WLTE_RELAY.commands["ON"])
    assert matcher.feed(json.dumps({"id": "cmd-1", **extra}), retained=False) is None


def test_result_statuses_table() -> None:
    assert set(RESULT_STATUSES) == {"ACK", "SUCCESS", "FAILED", "REJECTED"}


@pytest.mark.parametrize(
    ("payload", "parsed"),
    [
        ('{"id": "a"}', {"id": "a"}),
        ("[]", None),
        ("nope", None),
        ("1", None),
    ],
)
def test_parse_result(payload: str, parsed: dict[str, object] | None) -> None:
    assert parse_result(payload) == parsed
