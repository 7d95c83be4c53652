"""The device simulator against a real mosquitto: every contract, mode and the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
import json
import os
from pathlib import Path
import queue
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from custom_components.iotee.core.device_types import (
    DEVICE_TYPES,
    ResultConfirmation,
    SequenceConfirmation,
    render,
)
from simulator import Behaviour, Kind, Mode, SimulatedDevice
from simulator.__main__ import DeviceSpec, parse_device

from .broker import Message, Mosquitto, PahoPeer, free_port

ROOT = Path(__file__).resolve().parent.parent
QUIET = 0.3
"""Seconds to listen when asserting that nothing is published."""

type MakeDevice = Callable[..., SimulatedDevice]


@pytest.fixture
def make_device(mosquitto: Mosquitto) -> Generator[MakeDevice]:
    """Build and start simulated devices on the test broker; stop them all afterwards."""
    devices: list[SimulatedDevice] = []

    def make(
        kind: Kind,
        device_id: str,
        *,
        relays: int = 1,
        pulse_relays: tuple[int, ...] = (),
        **behaviour: Any,
    ) -> SimulatedDevice:
        behaviour = {"pulse": 0.1, "reboot_delay": 0.1} | behaviour
        device = SimulatedDevice(
            kind,
            device_id,
            mosquitto.host,
            mosquitto.port,
            relays=relays,
            pulse_relays=pulse_relays,
            behaviour=Behaviour(**behaviour),
        )
        devices.append(device)
        return device.start()

    yield make
    for device in devices:
        device.stop()


@contextmanager
def late_peer(broker: Mosquitto) -> Iterator[PahoPeer]:
    """Connect a second client, e.g. to see what a newcomer finds retained."""
    client = PahoPeer(broker, client_id="late-peer").connect()
    try:
        yield client
    finally:
        client.close()


def retained(peer: PahoPeer, topic: str) -> Message:
    """Subscribe to ``topic`` and return the retained message the broker sends first."""
    peer.subscribe(topic)
    message = peer.expect(topic)
    assert message.retain, f"{topic}: {message.payload!r} is not retained"
    return message


def result(peer: PahoPeer, topic: str) -> dict[str, Any]:
    """Return the next JSON result on ``topic``; results are never retained."""
    message = peer.expect(topic)
    assert not message.retain
    data: dict[str, Any] = json.loads(message.payload)
    return data


def quiet(peer: PahoPeer, topic: str, seconds: float = QUIET) -> None:
    """Assert that nothing arrives on ``topic`` for ``seconds``."""
    with pytest.raises(TimeoutError):
        peer.expect(topic, timeout=seconds)


def sequence(peer: PahoPeer, count: int, skip: str = "/set") -> list[tuple[str, str]]:
    """Return the next ``count`` (topic, payload) pairs in arrival order, skipping ``skip``."""
    seen: list[tuple[str, str]] = []
    while len(seen) < count:
        message = peer.messages.get(timeout=5)
        if not message.topic.endswith(skip):
            seen.append((message.topic, message.payload))
    return seen


def command(command_id: str, action: str) -> str:
    """Return a WLTE command payload."""
    return json.dumps({"id": command_id, "action": action})


# ---------------------------------------------------------------- iotee_device


def test_iotee_announces_online_and_lock_state_retained(
    make_device: MakeDevice, peer: PahoPeer
) -> None:
    """At start the availability and the lock state are retained on the broker."""
    device = make_device(Kind.IOTEE_DEVICE, "ABC123")
    assert device.online
    assert retained(peer, "iotee/dev/ABC123/status").payload == "online"
    assert retained(peer, "iotee/dev/ABC123/rls/state").payload == "1"
    assert device.state == {"lock": True}


def test_iotee_unlock_and_lock(make_device: MakeDevice, peer: PahoPeer) -> None:
    """0 unlocks, 1 locks; each time the lock state is published retained."""
    device = make_device(Kind.IOTEE_DEVICE, "ABC123")
    retained(peer, "iotee/dev/ABC123/rls/state")
    peer.publish("iotee/dev/ABC123/rls", "0")
    assert peer.expect("iotee/dev/ABC123/rls/state").payload == "0"
    assert device.state == {"lock": False}
    peer.publish("iotee/dev/ABC123/rls", "1")
    assert peer.expect("iotee/dev/ABC123/rls/state").payload == "1"
    assert device.state == {"lock": True}
    with late_peer(peer.broker) as late:
        assert retained(late, "iotee/dev/ABC123/rls/state").payload == "1"


def test_iotee_ignores_other_lock_payloads(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Only 1 and 0 are lock commands."""
    device = make_device(Kind.IOTEE_DEVICE, "ABC123")
    retained(peer, "iotee/dev/ABC123/rls/state")
    peer.publish("iotee/dev/ABC123/rls", "open")
    quiet(peer, "iotee/dev/ABC123/rls/state")
    assert device.state == {"lock": True}


def test_iotee_reboot_goes_offline_then_online(make_device: MakeDevice, peer: PahoPeer) -> None:
    """1 on rbt: offline, disconnect, reconnect, online (both retained)."""
    device = make_device(Kind.IOTEE_DEVICE, "ABC123")
    retained(peer, "iotee/dev/ABC123/status")
    peer.publish("iotee/dev/ABC123/rbt", "1")
    assert peer.expect("iotee/dev/ABC123/status").payload == "offline"
    assert peer.expect("iotee/dev/ABC123/status").payload == "online"
    with late_peer(peer.broker) as late:
        assert retained(late, "iotee/dev/ABC123/status").payload == "online"
    # The device answers commands again after the reboot.
    deadline = time.monotonic() + 5
    while not device.online and time.monotonic() < deadline:
        time.sleep(0.01)
    peer.subscribe("iotee/dev/ABC123/rls/state")
    peer.publish("iotee/dev/ABC123/rls", "0")
    while (message := peer.expect("iotee/dev/ABC123/rls/state")).payload != "0":
        assert message.retain  # the re-announced state, then the answer
    assert device.state == {"lock": False}


def test_iotee_fail_mode_reports_unchanged_lock(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Failing: the lock does not move and the device reports its unchanged state."""
    device = make_device(Kind.IOTEE_DEVICE, "ABC123", mode=Mode.FAIL)
    retained(peer, "iotee/dev/ABC123/rls/state")
    peer.publish("iotee/dev/ABC123/rls", "0")
    assert peer.expect("iotee/dev/ABC123/rls/state").payload == "1"
    assert device.state == {"lock": True}


def test_iotee_fail_mode_does_not_reboot(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Failing reboot: no offline, only the unchanged online availability."""
    make_device(Kind.IOTEE_DEVICE, "ABC123", mode=Mode.FAIL)
    retained(peer, "iotee/dev/ABC123/status")
    peer.publish("iotee/dev/ABC123/rbt", "1")
    assert peer.expect("iotee/dev/ABC123/status").payload == "online"
    quiet(peer, "iotee/dev/ABC123/status")


@pytest.mark.parametrize("mode", [Mode.REJECT, Mode.SILENT])
def test_iotee_reject_and_silent_never_answer(
    make_device: MakeDevice, peer: PahoPeer, mode: Mode
) -> None:
    """A rejecting or silent lock publishes nothing and does not move."""
    device = make_device(Kind.IOTEE_DEVICE, "ABC123", mode=mode)
    retained(peer, "iotee/dev/ABC123/rls/state")
    retained(peer, "iotee/dev/ABC123/status")
    peer.publish("iotee/dev/ABC123/rls", "0")
    peer.publish("iotee/dev/ABC123/rbt", "1")
    quiet(peer, "iotee/dev/ABC123/rls/state")
    quiet(peer, "iotee/dev/ABC123/status", 0.05)
    assert device.state == {"lock": True}


def test_iotee_slow_answer(make_device: MakeDevice, peer: PahoPeer) -> None:
    """A delay postpones the answer."""
    make_device(Kind.IOTEE_DEVICE, "ABC123", delay=0.3)
    retained(peer, "iotee/dev/ABC123/rls/state")
    sent = time.monotonic()
    peer.publish("iotee/dev/ABC123/rls", "0")
    assert peer.expect("iotee/dev/ABC123/rls/state").payload == "0"
    assert time.monotonic() - sent >= 0.3


def test_last_will_on_unclean_stop(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Dropping the connection makes the broker publish the retained last will."""
    device = make_device(Kind.IOTEE_DEVICE, "ABC123")
    retained(peer, "iotee/dev/ABC123/status")
    device.stop(clean=False)
    assert peer.expect("iotee/dev/ABC123/status").payload == "offline"
    assert not device.online
    with late_peer(peer.broker) as late:
        assert retained(late, "iotee/dev/ABC123/status").payload == "offline"


def test_clean_stop_publishes_offline(make_device: MakeDevice, peer: PahoPeer) -> None:
    """A clean stop publishes offline itself, retained."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789")
    retained(peer, "wlte/abc123456789/status")
    device.stop()
    assert peer.expect("wlte/abc123456789/status").payload == "offline"
    with late_peer(peer.broker) as late:
        assert retained(late, "wlte/abc123456789/status").payload == "offline"


def test_offline_mode_at_run_time(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Mode offline: last will, commands unanswered; back to normal: online, answering again."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789")
    retained(peer, "wlte/abc123456789/status")
    peer.subscribe("wlte/abc123456789/relay/1/result")
    device.set_behaviour(mode=Mode.OFFLINE)
    assert peer.expect("wlte/abc123456789/status").payload == "offline"
    assert not device.online
    peer.publish("wlte/abc123456789/relay/1/set", command("c1", "ON"))
    quiet(peer, "wlte/abc123456789/relay/1/result")
    assert device.set_behaviour(mode=Mode.NORMAL).mode is Mode.NORMAL
    assert device.online
    assert peer.expect("wlte/abc123456789/status").payload == "online"
    peer.publish("wlte/abc123456789/relay/1/set", command("c2", "ON"))
    assert result(peer, "wlte/abc123456789/relay/1/result")["id"] == "c2"


def test_started_offline_announces_offline(make_device: MakeDevice, peer: PahoPeer) -> None:
    """A device started in offline mode leaves a retained offline and stays away."""
    device = make_device(Kind.TASMOTA, "tasmota_1", mode=Mode.OFFLINE)
    assert not device.online
    assert retained(peer, "tele/tasmota_1/LWT").payload == "Offline"
    device.set_behaviour(mode=Mode.NORMAL)
    assert peer.expect("tele/tasmota_1/LWT").payload == "Online"


def test_broker_restart_reconnects(
    make_device: MakeDevice, mosquitto: Mosquitto, peer: PahoPeer
) -> None:
    """After a lost connection the device reconnects and announces itself again."""
    device = make_device(Kind.IOTEE_DEVICE, "ABC123")
    mosquitto.stop()
    mosquitto.start()
    with late_peer(mosquitto) as fresh:
        fresh.subscribe("iotee/dev/ABC123/status")
        assert fresh.expect("iotee/dev/ABC123/status", timeout=10).payload == "online"
        # The broker may deliver the announcement before the device marks itself ready.
        deadline = time.monotonic() + 5
        while not device.online and time.monotonic() < deadline:
            time.sleep(0.02)
        assert device.online


def test_context_manager(mosquitto: Mosquitto, peer: PahoPeer) -> None:
    """``with`` starts the device and stops it cleanly; it cannot be started twice."""
    with SimulatedDevice(Kind.TASMOTA, "t9", mosquitto.host, mosquitto.port) as device:
        assert retained(peer, "tele/t9/LWT").payload == "Online"
        with pytest.raises(RuntimeError, match="already started"):
            device.start()
    assert peer.expect("tele/t9/LWT").payload == "Offline"
    assert not device.online


def test_start_without_broker_times_out(socket_enabled: None) -> None:
    """No broker: start raises TimeoutError and leaves no thread behind."""
    device = SimulatedDevice(Kind.IOTEE_DEVICE, "ABC123", "127.0.0.1", free_port())
    with pytest.raises(TimeoutError, match="no connection"):
        device.start(timeout=0.2)
    assert not device.online


# ---------------------------------------------------------------- wlte_relay


def test_wlte_announces_online_and_relay_states(make_device: MakeDevice, peer: PahoPeer) -> None:
    """At start: online and every relay's state, retained."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789", relays=4)
    assert retained(peer, "wlte/abc123456789/status").payload == "online"
    for index in range(1, 5):
        assert retained(peer, f"wlte/abc123456789/relay/{index}/state").payload == "OFF"
    assert device.state == {"relay1": False, "relay2": False, "relay3": False, "relay4": False}


def test_wlte_on_acks_switches_and_succeeds(make_device: MakeDevice, peer: PahoPeer) -> None:
    """ON: ACK, relay state ON (retained), SUCCESS, all naming the command id."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789", relays=4)
    retained(peer, "wlte/abc123456789/relay/2/state")
    peer.subscribe("wlte/abc123456789/relay/2/result")
    peer.publish("wlte/abc123456789/relay/2/set", command("cmd-1", "ON"))
    state = "wlte/abc123456789/relay/2/state"
    answer = "wlte/abc123456789/relay/2/result"
    assert sequence(peer, 3) == [
        (answer, json.dumps({"id": "cmd-1", "status": "ACK", "reason": None})),
        (state, "ON"),
        (answer, json.dumps({"id": "cmd-1", "status": "SUCCESS", "reason": None})),
    ]
    assert device.state["relay2"] is True
    assert device.state["relay1"] is False
    with late_peer(peer.broker) as late:
        assert retained(late, state).payload == "ON"
    peer.publish("wlte/abc123456789/relay/2/set", command("cmd-2", "OFF"))
    assert [payload for _topic, payload in sequence(peer, 3)][1] == "OFF"
    assert device.state["relay2"] is False


def test_wlte_jog_pulses(make_device: MakeDevice, peer: PahoPeer) -> None:
    """JOG: ACK, ON, OFF after the pulse, then SUCCESS."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789", pulse=0.2)
    retained(peer, "wlte/abc123456789/relay/1/state")
    peer.subscribe("wlte/abc123456789/relay/1/result")
    peer.publish("wlte/abc123456789/relay/1/set", command("jog-1", "JOG"))
    ack, on = sequence(peer, 2)
    switched_on = time.monotonic()
    off, success = sequence(peer, 2)
    assert time.monotonic() - switched_on >= 0.15
    assert json.loads(ack[1])["status"] == "ACK"
    assert on == ("wlte/abc123456789/relay/1/state", "ON")
    assert off == ("wlte/abc123456789/relay/1/state", "OFF")
    assert json.loads(success[1]) == {"id": "jog-1", "status": "SUCCESS", "reason": None}
    assert device.state == {"relay1": False}


@pytest.mark.parametrize(
    ("relay", "payload", "reason_part"),
    [
        ("5", command("bad-relay", "ON"), "relay"),
        ("0", command("bad-relay", "ON"), "relay"),
        ("x", command("bad-relay", "ON"), "relay"),
        ("1", command("bad-action", "BLINK"), "action"),
        ("1", command("bad-action", "on"), "action"),
        ("1", json.dumps({"id": "no-action"}), "action"),
    ],
)
def test_wlte_rejects_bad_commands(
    make_device: MakeDevice, peer: PahoPeer, relay: str, payload: str, reason_part: str
) -> None:
    """A relay beyond N, an unknown action or a missing action: REJECTED with a reason."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789", relays=4)
    peer.subscribe(f"wlte/abc123456789/relay/{relay}/result")
    peer.publish(f"wlte/abc123456789/relay/{relay}/set", payload)
    answer = result(peer, f"wlte/abc123456789/relay/{relay}/result")
    assert answer["id"] == json.loads(payload)["id"]
    assert answer["status"] == "REJECTED"
    assert reason_part in answer["reason"]
    assert not any(device.state.values())


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", json.dumps({"action": "ON"})])
def test_wlte_ignores_commands_without_id(
    make_device: MakeDevice, peer: PahoPeer, payload: str
) -> None:
    """Without a readable command id there is nobody to answer."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789")
    peer.subscribe("wlte/abc123456789/relay/1/result")
    peer.publish("wlte/abc123456789/relay/1/set", payload)
    quiet(peer, "wlte/abc123456789/relay/1/result")
    assert device.state == {"relay1": False}


def test_wlte_fail_mode(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Failing: ACK then FAILED with a reason; the relay does not switch."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789", mode=Mode.FAIL)
    retained(peer, "wlte/abc123456789/relay/1/state")
    peer.subscribe("wlte/abc123456789/relay/1/result")
    peer.publish("wlte/abc123456789/relay/1/set", command("c1", "ON"))
    assert result(peer, "wlte/abc123456789/relay/1/result")["status"] == "ACK"
    failed = result(peer, "wlte/abc123456789/relay/1/result")
    assert failed["id"] == "c1"
    assert failed["status"] == "FAILED"
    assert failed["reason"]
    quiet(peer, "wlte/abc123456789/relay/1/state", 0.1)
    assert device.state == {"relay1": False}


def test_wlte_reject_mode(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Rejecting: REJECTED with a reason, no ACK, no switch."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789", mode=Mode.REJECT)
    peer.subscribe("wlte/abc123456789/relay/1/result")
    peer.publish("wlte/abc123456789/relay/1/set", command("c1", "JOG"))
    answer = result(peer, "wlte/abc123456789/relay/1/result")
    assert answer["status"] == "REJECTED"
    assert answer["id"] == "c1"
    assert answer["reason"]
    quiet(peer, "wlte/abc123456789/relay/1/result", 0.1)
    assert device.state == {"relay1": False}


def test_wlte_silent_mode(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Silent: no result, no state change."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789", mode=Mode.SILENT)
    retained(peer, "wlte/abc123456789/relay/1/state")
    peer.subscribe("wlte/abc123456789/relay/1/result")
    peer.publish("wlte/abc123456789/relay/1/set", command("c1", "ON"))
    quiet(peer, "wlte/abc123456789/relay/1/result")
    assert device.state == {"relay1": False}


def test_wlte_slow_mode_and_run_time_change(make_device: MakeDevice, peer: PahoPeer) -> None:
    """A delay postpones the ACK; changing the behaviour at run time takes effect."""
    device = make_device(Kind.WLTE_RELAY, "abc123456789", delay=0.3)
    peer.subscribe("wlte/abc123456789/relay/1/result")
    sent = time.monotonic()
    peer.publish("wlte/abc123456789/relay/1/set", command("slow", "ON"))
    assert result(peer, "wlte/abc123456789/relay/1/result")["status"] == "ACK"
    assert time.monotonic() - sent >= 0.3
    assert result(peer, "wlte/abc123456789/relay/1/result")["status"] == "SUCCESS"
    new = device.set_behaviour(delay=0.0, mode="fail")
    assert new == Behaviour(delay=0.0, mode=Mode.FAIL, pulse=0.1, reboot_delay=0.1)
    assert device.behaviour == new
    peer.publish("wlte/abc123456789/relay/1/set", command("fast", "OFF"))
    assert result(peer, "wlte/abc123456789/relay/1/result")["status"] == "ACK"
    assert result(peer, "wlte/abc123456789/relay/1/result")["status"] == "FAILED"
    assert device.state == {"relay1": True}


# ---------------------------------------------------------------- tasmota


def test_tasmota_power_on_off_toggle(make_device: MakeDevice, peer: PahoPeer) -> None:
    """POWER{i} ON/OFF/TOGGLE answer stat/POWER{i}, not retained; LWT Online is retained."""
    device = make_device(Kind.TASMOTA, "tasmota_1", relays=2)
    assert retained(peer, "tele/tasmota_1/LWT").payload == "Online"
    peer.subscribe("stat/tasmota_1/POWER2")
    quiet(peer, "stat/tasmota_1/POWER2", 0.1)  # stat is not retained
    for payload, expected in [("ON", "ON"), ("OFF", "OFF"), ("TOGGLE", "ON"), ("", "ON")]:
        peer.publish("cmnd/tasmota_1/POWER2", payload)
        message = peer.expect("stat/tasmota_1/POWER2")
        assert (message.payload, message.retain) == (expected, False)
    assert device.state == {"relay1": False, "relay2": True}


def test_tasmota_ignores_unknown_relays_and_commands(
    make_device: MakeDevice, peer: PahoPeer
) -> None:
    """A relay beyond N or another command gets no answer."""
    device = make_device(Kind.TASMOTA, "tasmota_1", relays=2)
    peer.subscribe("stat/#")
    peer.publish("cmnd/tasmota_1/POWER3", "ON")
    peer.publish("cmnd/tasmota_1/Dimmer", "50")
    peer.publish("cmnd/tasmota_1/POWER1", "BLINK")
    with pytest.raises(queue.Empty):
        peer.messages.get(timeout=QUIET)
    assert not any(device.state.values())


def test_tasmota_pulse_time(make_device: MakeDevice, peer: PahoPeer) -> None:
    """A relay with a PulseTime turns OFF after the pulse; the others stay ON."""
    device = make_device(Kind.TASMOTA, "tasmota_1", relays=2, pulse_relays=(1,), pulse=0.2)
    peer.subscribe("stat/tasmota_1/+")
    sent = time.monotonic()  # the pulse starts after this: delivery delays cannot shorten it
    peer.publish("cmnd/tasmota_1/POWER1", "ON")
    assert peer.expect("stat/tasmota_1/POWER1").payload == "ON"
    assert device.state["relay1"] is True
    assert peer.expect("stat/tasmota_1/POWER1").payload == "OFF"
    assert time.monotonic() - sent >= 0.2
    assert device.state["relay1"] is False
    peer.publish("cmnd/tasmota_1/POWER2", "ON")
    assert peer.expect("stat/tasmota_1/POWER2").payload == "ON"
    quiet(peer, "stat/tasmota_1/POWER2")
    assert device.state["relay2"] is True


def test_tasmota_restart(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Restart 1: Offline, reconnect, Online."""
    make_device(Kind.TASMOTA, "tasmota_1")
    retained(peer, "tele/tasmota_1/LWT")
    peer.publish("cmnd/tasmota_1/Restart", "1")
    assert peer.expect("tele/tasmota_1/LWT").payload == "Offline"
    assert peer.expect("tele/tasmota_1/LWT").payload == "Online"


def test_tasmota_last_will(make_device: MakeDevice, peer: PahoPeer) -> None:
    """An unclean stop leaves the retained Offline last will."""
    device = make_device(Kind.TASMOTA, "tasmota_1")
    retained(peer, "tele/tasmota_1/LWT")
    device.stop(clean=False)
    assert peer.expect("tele/tasmota_1/LWT").payload == "Offline"


def test_tasmota_fail_reject_silent(make_device: MakeDevice, peer: PahoPeer) -> None:
    """Fail reports the unchanged state; reject and silent answer nothing."""
    device = make_device(Kind.TASMOTA, "tasmota_1", mode=Mode.FAIL)
    peer.subscribe("stat/tasmota_1/POWER1")
    peer.publish("cmnd/tasmota_1/POWER1", "ON")
    assert peer.expect("stat/tasmota_1/POWER1").payload == "OFF"
    for mode in (Mode.REJECT, Mode.SILENT):
        device.set_behaviour(mode=mode)
        peer.publish("cmnd/tasmota_1/POWER1", "ON")
        quiet(peer, "stat/tasmota_1/POWER1")
    assert device.state == {"relay1": False}


# ---------------------------------------------------------------- the integration's contracts


@pytest.mark.parametrize(
    ("kind", "mqtt_id", "command_name"),
    [
        (Kind.IOTEE_DEVICE, "ABC123", "unlock"),
        (Kind.IOTEE_DEVICE, "ABC123", "lock"),
        (Kind.IOTEE_DEVICE, "ABC123", "reboot"),
        (Kind.WLTE_RELAY, "abc123456789", "ON"),
        (Kind.WLTE_RELAY, "abc123456789", "OFF"),
        (Kind.WLTE_RELAY, "abc123456789", "JOG"),
        (Kind.TASMOTA, "tasmota_1", "ON"),
        (Kind.TASMOTA, "tasmota_1", "OFF"),
        (Kind.TASMOTA, "tasmota_1", "JOG"),
        (Kind.TASMOTA, "tasmota_1", "reboot"),
    ],
)
def test_satisfies_device_type_contract(
    make_device: MakeDevice, peer: PahoPeer, kind: Kind, mqtt_id: str, command_name: str
) -> None:
    """Each command as the integration's device types send it gets the confirmation they expect."""
    device_type = DEVICE_TYPES[kind]
    spec = device_type.command(command_name)
    assert spec is not None
    device = make_device(kind, mqtt_id, relays=2, pulse_relays=(2,) if kind is Kind.TASMOTA else ())
    values = {"mqtt_id": mqtt_id, "relay": 2, "command_id": "c-42", "action": command_name}
    availability = render(device_type.availability_topic, **values)
    assert device.availability_topic == availability
    assert retained(peer, availability).payload == device_type.payload_online
    confirmation = spec.confirmation
    confirm_topic = render(confirmation.topic, **values)
    if confirm_topic != availability:
        peer.subscribe(confirm_topic)
        if kind is Kind.IOTEE_DEVICE:  # the lock state is retained
            assert peer.expect(confirm_topic).retain
    if command_name == "lock":  # the device starts locked: unlock first, so locking is a change
        peer.publish(render(spec.topic, **values), "0")
        assert peer.expect(confirm_topic).payload == "0"
    peer.publish(render(spec.topic, **values), render(spec.payload, **values))
    if isinstance(confirmation, SequenceConfirmation):
        for expected in confirmation.payloads:
            assert peer.expect(confirm_topic).payload == expected
    else:
        assert isinstance(confirmation, ResultConfirmation)
        statuses = [result(peer, confirm_topic) for _ in range(2)]
        assert [(answer["id"], answer["status"]) for answer in statuses] == [
            ("c-42", "ACK"),
            ("c-42", "SUCCESS"),
        ]


# ---------------------------------------------------------------- command line


def test_parse_device() -> None:
    """KIND:ID[:RELAYS[:pulse=I,J]]."""
    assert parse_device("iotee_device:ABC123") == DeviceSpec(Kind.IOTEE_DEVICE, "ABC123")
    assert parse_device("wlte_relay:abc123456789:4") == DeviceSpec(
        Kind.WLTE_RELAY, "abc123456789", 4
    )
    assert parse_device("tasmota:tasmota_1:2:pulse=1,2") == DeviceSpec(
        Kind.TASMOTA, "tasmota_1", 2, (1, 2)
    )
    for bad in ["lamp:x", "tasmota", "tasmota:t:two", "wlte_relay:a:2:pulse=1", "iotee_device:A:2"]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse_device(bad)


def test_constructor_validates() -> None:
    """Bad kinds, ids, relay counts and pulse relays are refused."""
    with pytest.raises(ValueError, match="lamp"):
        SimulatedDevice("lamp", "x")
    with pytest.raises(ValueError, match="device id"):
        SimulatedDevice(Kind.TASMOTA, "a/b")
    with pytest.raises(ValueError, match="relays"):
        SimulatedDevice(Kind.TASMOTA, "t", relays=0)
    with pytest.raises(ValueError, match="pulse_relays"):
        SimulatedDevice(Kind.TASMOTA, "t", relays=2, pulse_relays=(3,))
    with pytest.raises(ValueError, match="delay"):
        Behaviour(delay=-1)


def test_command_line_runs_until_sigterm(mosquitto: Mosquitto, peer: PahoPeer) -> None:
    """python -m simulator announces the devices, answers, and stops cleanly on SIGTERM."""
    argv = [sys.executable, "-m", "simulator", "--host", mosquitto.host]
    argv += ["--port", str(mosquitto.port), "--pulse", "0.1", "--reboot-delay", "0.1"]
    argv += ["--device", "iotee_device:ABC123", "--device", "wlte_relay:abc123456789:4"]
    argv += ["--device", "tasmota:tasmota_1:2:pulse=1"]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        peer.subscribe("tele/tasmota_1/LWT")  # the last device started
        assert peer.expect("tele/tasmota_1/LWT", timeout=10).payload == "Online"
        peer.subscribe("wlte/abc123456789/relay/3/result")
        peer.publish("wlte/abc123456789/relay/3/set", command("cli", "JOG"))
        assert result(peer, "wlte/abc123456789/relay/3/result")["status"] == "ACK"
        assert result(peer, "wlte/abc123456789/relay/3/result")["status"] == "SUCCESS"
        peer.subscribe("iotee/dev/ABC123/status")
        assert peer.expect("iotee/dev/ABC123/status").payload == "online"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert peer.expect("tele/tasmota_1/LWT").payload == "Offline"
    assert peer.expect("iotee/dev/ABC123/status").payload == "offline"
    assert "<- wlte/abc123456789/relay/3/set" in output
    assert '"status": "SUCCESS"' in output


def test_device_reconnects_after_a_long_broker_outage(mosquitto: Mosquitto) -> None:
    """A device keeps trying while the broker is down for seconds, then announces itself."""
    device = SimulatedDevice("iotee_device", "LONG1", mosquitto.host, mosquitto.port)
    device.start()
    try:
        mosquitto.stop()
        time.sleep(3.5)
        mosquitto.start()
        deadline = time.monotonic() + 20
        while not device.online and time.monotonic() < deadline:
            time.sleep(0.1)
        assert device.online
        peer = PahoPeer(mosquitto, client_id="long-outage-peer").connect()
        try:
            peer.subscribe("iotee/dev/LONG1/status")
            assert peer.expect("iotee/dev/LONG1/status").payload == "online"
        finally:
            peer.close()
    finally:
        device.stop()
