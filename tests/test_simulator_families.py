"""The simulated Shelly, Zigbee2MQTT and ESPHome devices against a real mosquitto."""

from __future__ import annotations

from collections.abc import Generator
import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.device_types import DEVICE_TYPES
from custom_components.iotee.core.matcher import ConfirmationMatcher
from custom_components.iotee.core.model import CommandStatus
from simulator import Behaviour, Kind, Mode, SimulatedDevice
from simulator.__main__ import DeviceSpec, parse_device
from simulator.families import EspHomeDevice, ShellyDevice, Zigbee2MqttDevice

from .broker import Mosquitto, PahoPeer
from .test_simulator import ROOT, MakeDevice, quiet, retained


@pytest.fixture
def make_device(mosquitto: Mosquitto) -> Generator[MakeDevice]:
    """Build and start simulated devices (with family options); stop them all afterwards."""
    devices: list[SimulatedDevice] = []

    def make(kind: Kind, device_id: str, *, relays: int = 1, **options: Any) -> SimulatedDevice:
        behaviour = {key: options.pop(key) for key in ("mode", "delay", "pulse") if key in options}
        device = SimulatedDevice(
            kind,
            device_id,
            mosquitto.host,
            mosquitto.port,
            relays=relays,
            behaviour=Behaviour(**({"reboot_delay": 0.1} | behaviour)),
            **options,
        )
        devices.append(device)
        return device.start()

    yield make
    for device in devices:
        device.stop()


def frame(method: str, command_id: Any = "c1", **params: Any) -> str:
    """Return a JSON-RPC request frame from ``iotee-test``."""
    return json.dumps({"id": command_id, "src": "iotee-test", "method": method, "params": params})


def answer(peer: PahoPeer, topic: str = "iotee-test/rpc") -> dict[str, Any]:
    message = peer.expect(topic)
    assert not message.retain
    data: dict[str, Any] = json.loads(message.payload)
    return data


def test_kinds_build_their_family_class(make_device: MakeDevice) -> None:
    assert isinstance(make_device(Kind.SHELLY_GEN2, "sh1", relays=2), ShellyDevice)
    assert isinstance(make_device(Kind.ZIGBEE2MQTT_LOCK, "door"), Zigbee2MqttDevice)
    assert isinstance(make_device(Kind.ESPHOME_SWITCH, "board"), EspHomeDevice)


# ---- Shelly ---------------------------------------------------------------------------------


def test_shelly_announces_online_and_switch_status(make_device: MakeDevice, peer: PahoPeer) -> None:
    device = make_device(Kind.SHELLY_GEN2, "shelly-a1", relays=2)
    assert device.availability_topic == "shelly-a1/online"
    assert retained(peer, "shelly-a1/online").payload == "true"
    status = json.loads(retained(peer, "shelly-a1/status/switch:1").payload)
    assert (status["id"], status["output"]) == (1, False)


def test_shelly_switch_set_answers_with_the_request_id(
    make_device: MakeDevice, peer: PahoPeer
) -> None:
    """Switch 0 is relay 1; the answer goes to <src>/rpc with the same id, also unchanged."""
    device = make_device(Kind.SHELLY_GEN2, "shelly-a1", relays=2)
    peer.subscribe("iotee-test/rpc")
    peer.subscribe("shelly-a1/status/+")
    peer.publish("shelly-a1/rpc", frame("Switch.Set", "c1", id=0, on=True))
    reply = answer(peer)
    assert reply == {
        "id": "c1",
        "src": "shelly-a1",
        "dst": "iotee-test",
        "result": {"was_on": False},
    }
    assert device.state == {"relay1": True, "relay2": False}
    peer.publish("shelly-a1/rpc", frame("Switch.Set", 7, id=0, on=True))
    assert answer(peer) == {
        "id": 7,
        "src": "shelly-a1",
        "dst": "iotee-test",
        "result": {"was_on": True},
    }


def test_shelly_toggle_after_switches_back(make_device: MakeDevice, peer: PahoPeer) -> None:
    device = make_device(Kind.SHELLY_GEN2, "shelly-a1", relays=1)
    peer.subscribe("shelly-a1/status/switch:0")
    assert json.loads(peer.expect("shelly-a1/status/switch:0").payload)["output"] is False
    peer.publish("shelly-a1/rpc", frame("Switch.Set", id=0, on=True, toggle_after=0.2))
    outputs = [json.loads(peer.expect("shelly-a1/status/switch:0").payload)["output"] for _ in "ab"]
    assert outputs == [True, False]
    assert device.state == {"relay1": False}


@pytest.mark.parametrize(
    ("mode", "params", "code"),
    [
        (Mode.FAIL, {"id": 0, "on": True}, -109),
        (Mode.REJECT, {"id": 0, "on": True}, -103),
        (Mode.NORMAL, {"id": 5, "on": True}, -105),
        (Mode.NORMAL, {"id": 0}, -103),
    ],
)
def test_shelly_error_frames(
    make_device: MakeDevice, peer: PahoPeer, mode: Mode, params: dict[str, Any], code: int
) -> None:
    make_device(Kind.SHELLY_GEN2, "shelly-a1", relays=1, mode=mode)
    peer.subscribe("iotee-test/rpc")
    peer.publish("shelly-a1/rpc", frame("Switch.Set", "c9", **params))
    reply = answer(peer)
    assert reply["id"] == "c9"
    assert reply["error"]["code"] == code
    assert reply["error"]["message"]


def test_shelly_reboot_answers_then_goes_offline_and_back(
    make_device: MakeDevice, peer: PahoPeer
) -> None:
    make_device(Kind.SHELLY_GEN2, "shelly-a1", relays=1)
    peer.subscribe("shelly-a1/online")
    assert peer.expect("shelly-a1/online").payload == "true"
    peer.subscribe("iotee-test/rpc")
    peer.publish("shelly-a1/rpc", frame("Shelly.Reboot"))
    assert answer(peer)["result"] is None
    assert [peer.expect("shelly-a1/online").payload for _ in "ab"] == ["false", "true"]


def test_shelly_silent_and_garbage(make_device: MakeDevice, peer: PahoPeer) -> None:
    device = make_device(Kind.SHELLY_GEN2, "shelly-a1", relays=1)
    peer.subscribe("iotee-test/rpc")
    peer.publish("shelly-a1/rpc", "not json")
    peer.publish("shelly-a1/rpc", json.dumps({"method": "Switch.Set"}))
    quiet(peer, "iotee-test/rpc")
    device.set_behaviour(mode=Mode.SILENT)
    peer.publish("shelly-a1/rpc", frame("Switch.Set", id=0, on=True))
    quiet(peer, "iotee-test/rpc")


# ---- Zigbee2MQTT ---------------------------------------------------------------------------


def test_z2m_lock_locks_unlocks_and_jams(make_device: MakeDevice, peer: PahoPeer) -> None:
    device = make_device(Kind.ZIGBEE2MQTT_LOCK, "front_door")
    availability = retained(peer, "zigbee2mqtt/front_door/availability")
    assert json.loads(availability.payload) == {"state": "online"}
    peer.subscribe("zigbee2mqtt/front_door")
    peer.publish("zigbee2mqtt/front_door/set", json.dumps({"state": "UNLOCK"}))
    state = json.loads(peer.expect("zigbee2mqtt/front_door").payload)
    assert (state["state"], state["lock_state"]) == ("UNLOCK", "unlocked")
    assert device.state == {"lock": False}
    device.set_behaviour(mode=Mode.FAIL)
    peer.publish("zigbee2mqtt/front_door/set", json.dumps({"state": "LOCK"}))
    state = json.loads(peer.expect("zigbee2mqtt/front_door").payload)
    assert (state["state"], state["lock_state"]) == ("LOCK", "not_fully_locked")


def test_z2m_switch_republishes_after_every_set(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Multi-gang: state_l<n>; the whole state after each set, changed or not."""
    make_device(Kind.ZIGBEE2MQTT_SWITCH, "gate", relays=2, base_topic="z2m")
    peer.subscribe("z2m/gate")  # the state is not retained: nothing until a set
    for _ in range(2):
        peer.publish("z2m/gate/set", json.dumps({"state_l2": "ON"}))
        state = json.loads(peer.expect("z2m/gate").payload)
        assert (state["state_l1"], state["state_l2"]) == ("OFF", "ON")


def test_z2m_device_goes_offline(make_device: MakeDevice, peer: PahoPeer) -> None:
    device = make_device(Kind.ZIGBEE2MQTT_SWITCH, "pump", relays=1)
    peer.subscribe("zigbee2mqtt/pump/availability")
    assert json.loads(peer.expect("zigbee2mqtt/pump/availability").payload)["state"] == "online"
    device.set_behaviour(mode=Mode.OFFLINE)
    assert json.loads(peer.expect("zigbee2mqtt/pump/availability").payload)["state"] == "offline"


# ---- ESPHome -------------------------------------------------------------------------------


def test_esphome_lock_and_jammed(make_device: MakeDevice, peer: PahoPeer) -> None:
    device = make_device(Kind.ESPHOME_LOCK, "garage", object_ids=("door",))
    assert retained(peer, "garage/status").payload == "online"
    assert retained(peer, "garage/lock/door/state").payload == "LOCKED"
    peer.publish("garage/lock/door/command", "UNLOCK")
    assert peer.expect("garage/lock/door/state").payload == "UNLOCKED"
    device.set_behaviour(mode=Mode.FAIL)
    peer.publish("garage/lock/door/command", "LOCK")
    assert peer.expect("garage/lock/door/state").payload == "JAMMED"


def test_esphome_switch_publishes_only_changes(make_device: MakeDevice, peer: PahoPeer) -> None:
    make_device(Kind.ESPHOME_SWITCH, "board", relays=2)
    assert retained(peer, "board/switch/relay_2/state").payload == "OFF"
    peer.publish("board/switch/relay_2/command", "ON")
    assert peer.expect("board/switch/relay_2/state").payload == "ON"
    peer.publish("board/switch/relay_2/command", "ON")
    quiet(peer, "board/switch/relay_2/state")


# ---- the integration's contracts -----------------------------------------------------------


CASES = [
    (Kind.SHELLY_GEN2, "sh1", {"src": "iotee-test", "jog_seconds": "0.2"}, "ON", 2),
    (Kind.SHELLY_GEN2, "sh1", {"src": "iotee-test", "jog_seconds": "0.2"}, "JOG", 2),
    (Kind.SHELLY_GEN2, "sh1", {"src": "iotee-test"}, "reboot", None),
    (Kind.ZIGBEE2MQTT_LOCK, "door", {"friendly_name": "door"}, "unlock", None),
    (Kind.ZIGBEE2MQTT_SWITCH, "gate", {"friendly_name": "gate"}, "ON", 2),
    (Kind.ESPHOME_LOCK, "garage", {}, "unlock", None),
    (Kind.ESPHOME_SWITCH, "board", {}, "ON", 2),
]


@pytest.mark.parametrize(("kind", "device_id", "settings", "name", "relay"), CASES)
def test_satisfies_device_type_contract(
    make_device: MakeDevice,
    peer: PahoPeer,
    kind: Kind,
    device_id: str,
    settings: dict[str, str],
    name: str,
    relay: int | None,
) -> None:
    """The command as the integration renders it is confirmed as its matcher expects."""
    dtype = DEVICE_TYPES[kind]
    config = DeviceConfig(device_id, "x", dtype, 2 if relay else 0, settings=settings)
    device = make_device(kind, device_id, relays=2)
    assert device.availability_topic == config.topic(dtype.availability_topic)
    spec = dtype.commands[name]
    confirmation = config.confirmation(spec, relay)
    matcher = ConfirmationMatcher("c-42", confirmation, confirmation.topic)
    peer.subscribe(confirmation.topic)
    peer.publish(
        config.topic(spec.topic, relay),
        config.render(spec.payload, relay, command_id="c-42", action=name),
    )
    verdict = None
    while verdict is None:
        message = peer.expect(confirmation.topic)
        verdict = matcher.feed(message.payload, retained=message.retain)
    assert verdict.status is CommandStatus.COMPLETED


def test_parse_family_devices() -> None:
    assert parse_device("shelly_gen2:sh1:2") == DeviceSpec(Kind.SHELLY_GEN2, "sh1", 2)
    assert parse_device("zigbee2mqtt_lock:door") == DeviceSpec(Kind.ZIGBEE2MQTT_LOCK, "door")
    with pytest.raises(Exception, match="no relay count"):
        parse_device("esphome_lock:garage:2")


def test_command_line_runs_the_develop_families(mosquitto: Mosquitto, peer: PahoPeer) -> None:
    """The family devices scripts/develop starts come up from the command line."""
    argv = [sys.executable, "-m", "simulator", "--host", mosquitto.host, "--port"]
    argv += [str(mosquitto.port), "--device", "shelly_gen2:shellyplus2pm-dev:2"]
    argv += ["--device", "zigbee2mqtt_lock:back_door", "--device", "esphome_switch:garden-board:2"]
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for topic, online in (
            ("garden-board/status", "online"),  # the last device started
            ("shellyplus2pm-dev/online", "true"),
            ("zigbee2mqtt/back_door/availability", '{"state": "online"}'),
        ):
            peer.subscribe(topic)
            assert peer.expect(topic, timeout=10).payload == online
        peer.subscribe("zigbee2mqtt/bridge/devices")
        listed = json.loads(peer.expect("zigbee2mqtt/bridge/devices").payload)
        assert [entry["friendly_name"] for entry in listed] == ["Coordinator", "back_door"]
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
