"""Shelly Gen2+, Zigbee2MQTT and ESPHome as data: topics, payloads, confirmations, states."""

from __future__ import annotations

from dataclasses import replace
import json

import pytest

from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.device_types import (
    DEVICE_TYPES,
    ESPHOME_LOCK,
    ESPHOME_SWITCH,
    IOTEE_DEVICE,
    SHELLY_GEN2,
    TASMOTA,
    WLTE_RELAY,
    ZIGBEE2MQTT_LOCK,
    ZIGBEE2MQTT_SWITCH,
    DeviceType,
    topic_filter,
)
from custom_components.iotee.core.matcher import ConfirmationMatcher, Verdict
from custom_components.iotee.core.model import CommandStatus, ErrorCode
from custom_components.iotee.core.state_parser import Reading, read_state

DONE = Verdict(CommandStatus.COMPLETED)


def device(
    dtype: DeviceType, relays: int = 0, relay_keys: tuple[str, ...] = (), **settings: str
) -> DeviceConfig:
    """Return a configured device ``dev1`` of ``dtype``."""
    return DeviceConfig("dev1", "Device", dtype, relays, settings=settings, relay_keys=relay_keys)


def command(config: DeviceConfig, name: str, relay: int | None = None) -> tuple[str, str]:
    """Return the topic and payload IoTee publishes for ``name``."""
    spec = config.device_type.commands[name]
    return config.topic(spec.topic, relay), config.render(
        spec.payload, relay, command_id="c1", action=name
    )


def matcher(config: DeviceConfig, name: str, relay: int | None = None) -> ConfirmationMatcher:
    """Return the matcher the engine would follow ``name`` (command id ``c1``) with."""
    confirmation = config.confirmation(config.device_type.commands[name], relay)
    return ConfirmationMatcher("c1", confirmation, confirmation.topic)


def live(m: ConfirmationMatcher, payload: object) -> Verdict | None:
    """Feed one live message (objects are sent as JSON)."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return m.feed(text, retained=False)


def test_every_family_command_has_a_test() -> None:
    """New commands of these families need a case below."""
    assert {(name, tuple(dt.commands)) for name, dt in DEVICE_TYPES.items()} >= {
        ("shelly_gen2", ("ON", "OFF", "JOG", "reboot")),
        ("zigbee2mqtt_lock", ("lock", "unlock")),
        ("zigbee2mqtt_switch", ("ON", "OFF")),
        ("esphome_lock", ("lock", "unlock")),
        ("esphome_switch", ("ON", "OFF")),
    }


# ---- Shelly Gen2+ --------------------------------------------------------------------------


SHELLY = device(SHELLY_GEN2, relays=2, topic_prefix="shellyplus2pm-a1", src="iotee-hub")


@pytest.mark.parametrize(
    ("name", "relay", "method", "params"),
    [
        ("ON", 1, "Switch.Set", {"id": 0, "on": True}),
        ("OFF", 2, "Switch.Set", {"id": 1, "on": False}),
        ("JOG", 2, "Switch.Set", {"id": 1, "on": True, "toggle_after": 1}),
        ("reboot", None, "Shelly.Reboot", {}),
    ],
)
def test_shelly_rpc_frames(name: str, relay: int | None, method: str, params: object) -> None:
    """IoTee relay n is Shelly switch n - 1; the frame names IoTee's command id and src."""
    topic, payload = command(SHELLY, name, relay)
    assert topic == "shellyplus2pm-a1/rpc"
    assert json.loads(payload) == {
        "id": "c1",
        "src": "iotee-hub",
        "method": method,
        "params": params,
    }
    assert matcher(SHELLY, name, relay).topic == "iotee-hub/rpc"


def test_shelly_jog_length_is_a_setting() -> None:
    config = device(SHELLY_GEN2, relays=1, topic_prefix="s", src="i", jog_seconds="2.5")
    assert json.loads(command(config, "JOG", 1)[1])["params"]["toggle_after"] == 2.5


def test_shelly_defaults_from_hardware_id() -> None:
    """Without settings the topic prefix is the hardware id and src is iotee-<hardware id>."""
    config = device(SHELLY_GEN2, relays=1)
    assert command(config, "ON", 1)[0] == "dev1/rpc"
    assert matcher(config, "ON", 1).topic == "iotee-dev1/rpc"


def test_shelly_result_completes_error_fails_with_device_message() -> None:
    m = matcher(SHELLY, "ON", 1)
    assert (
        live(
            m,
            {
                "id": "c1",
                "src": "shellyplus2pm-a1",
                "dst": "iotee-hub",
                "result": {"was_on": False},
            },
        )
        == DONE
    )
    m = matcher(SHELLY, "ON", 1)
    error = {"code": -103, "message": "Resource 'switch:5' does not exist!"}
    assert live(m, {"id": "c1", "src": "s", "dst": "iotee-hub", "error": error}) == Verdict(
        CommandStatus.FAILED,
        ErrorCode.DEVICE_FAILED,
        "Resource 'switch:5' does not exist! (code -103)",
    )


def test_shelly_answer_when_already_on_completes() -> None:
    """Shelly answers every call, also one that changes nothing (``was_on: true``)."""
    assert live(matcher(SHELLY, "ON", 1), {"id": "c1", "result": {"was_on": True}}) == DONE


@pytest.mark.parametrize(
    "frame",
    [
        {"id": "c2", "result": {}},  # another command's answer
        {"id": "c1", "src": "iotee-hub", "method": "Switch.Set", "params": {}},  # a request
        {"src": "s", "method": "NotifyStatus", "params": {"switch:0": {"output": True}}},
        {"id": True, "result": {}},
        ["c1"],
        "c1",
    ],
)
def test_shelly_other_frames_say_nothing(frame: object) -> None:
    assert live(matcher(SHELLY, "ON", 1), frame) is None


def test_shelly_numeric_id_matches_its_text() -> None:
    """The id may be a number or a string; an answer with the same number names the command."""
    confirmation = SHELLY.confirmation(SHELLY_GEN2.commands["ON"], 1)
    m = ConfirmationMatcher("12", confirmation, confirmation.topic)
    assert m.feed('{"id": 12, "result": null}', retained=False) == DONE


def test_shelly_retained_answer_never_confirms() -> None:
    assert matcher(SHELLY, "ON", 1).feed('{"id": "c1", "result": {}}', retained=True) is None


def test_shelly_state_and_availability() -> None:
    dtype = SHELLY_GEN2
    topic = SHELLY.topic(dtype.relay_state_topic or "", 2)
    assert topic == "shellyplus2pm-a1/status/switch:1"
    readings = SHELLY.readings(dtype.relay_readings, 2)
    status = {"id": 1, "source": "WS_in", "output": True, "apower": 8.9, "temperature": {"tC": 40}}
    assert read_state(readings, json.dumps(status)) == Reading(True)
    assert read_state(readings, '{"id": 1, "output": false}') == Reading(False)
    assert read_state(readings, '{"id": 1, "apower": 0}') is None
    assert SHELLY.topic(dtype.availability_topic) == "shellyplus2pm-a1/online"
    assert read_state(dtype.availability_readings, "true") == Reading(True)
    assert read_state(dtype.availability_readings, "false") == Reading(False)


# ---- Zigbee2MQTT ---------------------------------------------------------------------------


Z2M_LOCK = device(ZIGBEE2MQTT_LOCK, base_topic="zigbee2mqtt", friendly_name="hall/front door")


@pytest.mark.parametrize(("name", "target"), [("lock", "LOCK"), ("unlock", "UNLOCK")])
def test_z2m_lock_command_and_confirmation(name: str, target: str) -> None:
    """A friendly name may span levels; the state JSON's ``state`` confirms."""
    assert command(Z2M_LOCK, name) == (
        "zigbee2mqtt/hall/front door/set",
        json.dumps({"state": target}),
    )
    m = matcher(Z2M_LOCK, name)
    assert m.topic == "zigbee2mqtt/hall/front door"
    assert live(m, {"battery": 80, "linkquality": 120}) is None
    other = "UNLOCK" if target == "LOCK" else "LOCK"
    assert live(m, {"state": other, "lock_state": other.lower() + "ed"}) is None
    assert live(m, {"state": target, "lock_state": target.lower() + "ed", "battery": 80}) == DONE


def test_z2m_lock_not_fully_locked_fails() -> None:
    """Zigbee2MQTT reports a jammed bolt as ``state: LOCK`` with ``lock_state: not_fully_locked``:
    the failure wins."""
    m = matcher(Z2M_LOCK, "lock")
    assert live(m, {"state": "LOCK", "lock_state": "not_fully_locked"}) == Verdict(
        CommandStatus.FAILED, ErrorCode.DEVICE_FAILED, "device reported not_fully_locked"
    )


def test_z2m_lock_state_reading() -> None:
    readings = Z2M_LOCK.readings(ZIGBEE2MQTT_LOCK.lock_readings, None)
    assert read_state(readings, '{"state": "LOCK", "lock_state": "locked"}') == Reading(True)
    assert read_state(readings, '{"state": "LOCK", "lock_state": "not_fully_locked"}') == Reading(
        None
    )
    assert read_state(readings, '{"state": "UNLOCK"}') == Reading(False)
    assert read_state(readings, '{"battery": 80}') is None


@pytest.mark.parametrize(
    ("relays", "relay", "key"), [(1, 1, "state"), (2, 1, "state_l1"), (3, 3, "state_l3")]
)
def test_z2m_switch_relay_keys(relays: int, relay: int, key: str) -> None:
    """One relay: ``state``; several: ``state_l<n>``, unless the user named them."""
    config = device(ZIGBEE2MQTT_SWITCH, relays, base_topic="z2m", friendly_name="gate")
    assert command(config, "ON", relay) == ("z2m/gate/set", json.dumps({key: "ON"}))
    named = device(
        ZIGBEE2MQTT_SWITCH, 2, ("state_left", "state_right"), base_topic="z", friendly_name="g"
    )
    assert command(named, "OFF", 2)[1] == json.dumps({"state_right": "OFF"})


def test_z2m_shared_json_only_the_relays_field_counts() -> None:
    """The state names every gang; a command to relay 2 reads ``state_l2`` only."""
    config = device(ZIGBEE2MQTT_SWITCH, 2, base_topic="zigbee2mqtt", friendly_name="gate")
    m = matcher(config, "ON", 2)
    assert live(m, {"state_l1": "ON", "state_l2": "OFF", "linkquality": 90}) is None
    assert live(m, {"state_l1": "ON"}) is None
    assert live(m, {"state_l1": "OFF", "state_l2": "ON", "power_on_behavior": "off"}) == DONE
    readings = config.readings(ZIGBEE2MQTT_SWITCH.relay_values, 1)
    assert read_state(readings, '{"state_l1": "OFF", "state_l2": "ON"}') == Reading(False)


def test_z2m_command_to_the_current_state_completes_on_the_republished_state() -> None:
    """Zigbee2MQTT publishes the device's state after every /set, changed or not."""
    config = device(ZIGBEE2MQTT_SWITCH, 1, base_topic="zigbee2mqtt", friendly_name="pump")
    m = matcher(config, "ON", 1)
    assert live(m, {"state": "ON"}) == DONE


def test_z2m_availability_json_and_legacy() -> None:
    readings = ZIGBEE2MQTT_LOCK.availability_readings
    assert read_state(readings, '{"state": "online"}') == Reading(True)
    assert read_state(readings, '{"state": "offline"}') == Reading(False)
    assert read_state(readings, "online") == Reading(True)
    assert read_state(readings, "offline") == Reading(False)
    assert read_state(readings, '{"other": 1}') is None
    assert Z2M_LOCK.topic(ZIGBEE2MQTT_LOCK.availability_topic) == (
        "zigbee2mqtt/hall/front door/availability"
    )


# ---- ESPHome -------------------------------------------------------------------------------


ESP_LOCK = device(ESPHOME_LOCK, topic_prefix="garage", object_id="door_lock")


@pytest.mark.parametrize(
    ("name", "payload", "state"), [("lock", "LOCK", "LOCKED"), ("unlock", "UNLOCK", "UNLOCKED")]
)
def test_esphome_lock(name: str, payload: str, state: str) -> None:
    assert command(ESP_LOCK, name) == ("garage/lock/door_lock/command", payload)
    m = matcher(ESP_LOCK, name)
    assert m.topic == "garage/lock/door_lock/state"
    assert live(m, "LOCKING") is None
    assert live(m, state) == DONE


def test_esphome_lock_jammed_fails() -> None:
    m = matcher(ESP_LOCK, "lock")
    assert live(m, "JAMMED") == Verdict(
        CommandStatus.FAILED, ErrorCode.DEVICE_FAILED, "device reported JAMMED"
    )
    readings = ESP_LOCK.readings(ESPHOME_LOCK.lock_readings, None)
    assert read_state(readings, "JAMMED") == Reading(None)
    assert read_state(readings, "LOCKED") == Reading(True)
    assert read_state(readings, "LOCKING") is None


def test_esphome_switch_object_ids() -> None:
    """Relay n is the switch with the n-th object id (default ``relay_<n>``)."""
    config = device(ESPHOME_SWITCH, 2, topic_prefix="board")
    assert command(config, "ON", 2) == ("board/switch/relay_2/command", "ON")
    named = device(ESPHOME_SWITCH, 2, ("pump", "valve"), topic_prefix="board")
    assert command(named, "OFF", 2) == ("board/switch/valve/command", "OFF")
    assert matcher(named, "OFF", 2).topic == "board/switch/valve/state"
    assert named.topic(ESPHOME_SWITCH.availability_topic) == "board/status"


# ---- subscriptions -------------------------------------------------------------------------


def test_topic_filters_wildcard_ids_and_fill_settings() -> None:
    """Ids become ``+``; settings are filled in, even when they span levels."""
    assert topic_filter(IOTEE_DEVICE.availability_topic, {}) == "iotee/dev/+/status"
    assert topic_filter(TASMOTA.relay_state_topic or "", {}) == "stat/+/+"
    assert topic_filter(SHELLY_GEN2.relay_state_topic or "", SHELLY.values()) == (
        "shellyplus2pm-a1/status/+"
    )
    assert topic_filter("{base_topic}/{friendly_name}", Z2M_LOCK.values()) == (
        "zigbee2mqtt/hall/front door"
    )
    assert topic_filter(ESPHOME_SWITCH.relay_state_topic or "", {"topic_prefix": "a/b"}) == (
        "a/b/switch/+/state"
    )


def test_configured_as_compares_everything_but_the_ha_device_id() -> None:
    """A setup keeps a running device whose configuration is unchanged: the HA device id it
    was given meanwhile does not count; any configured field does."""
    running = replace(device(SHELLY_GEN2, 2, prefix="shelly-1"), device_id="ha-device-1")
    assert running.configured_as(device(SHELLY_GEN2, 2, prefix="shelly-1"))
    assert not running.configured_as(device(SHELLY_GEN2, 2, prefix="shelly-2"))
    assert not running.configured_as(device(SHELLY_GEN2, 1, prefix="shelly-1"))
    assert not running.configured_as(replace(running, name="Other", device_id=None))
    assert not running.configured_as(replace(running, relay_locks=frozenset({1})))


def test_a_confirmation_is_filled_in_once_per_command_and_relay() -> None:
    """Tracking asks for a target's confirmation with every command: the same filled-in one
    comes back for the same command and relay, another relay gets its own topic, and a type
    whose command was replaced (a custom device edited) gets the new template's."""
    config = device(WLTE_RELAY, relays=4)
    on = config.device_type.commands["ON"]
    first = config.confirmation(on, 2)
    assert first.topic == "wlte/dev1/relay/2/result"
    assert config.confirmation(on, 2) is first
    assert config.confirmation(on, 3).topic == "wlte/dev1/relay/3/result"
    assert config.confirmation(config.device_type.commands["OFF"], 2) == first
    edited = replace(on, confirmation=replace(on.confirmation, topic="other/{mqtt_id}/{relay}"))
    assert config.confirmation(edited, 2).topic == "other/dev1/2"
    assert config.confirmation(on, 2).topic == "wlte/dev1/relay/2/result"
