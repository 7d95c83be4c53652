"""Simulated Shelly Gen2+, Zigbee2MQTT and ESPHome devices, each speaking its firmware's contract.

- ``shelly_gen2`` (id = topic prefix P): availability ``P/online`` ``true``/``false``. JSON-RPC
  frames on ``P/rpc`` (``Switch.Set`` with ``id`` 0..N-1, ``on``, optional ``toggle_after``;
  ``Shelly.Reboot``) are answered on ``<src>/rpc`` with the request's ``id`` and ``result`` (or
  ``error``); switch states go to ``P/status/switch:<i>`` (``output``, retained). Mode ``fail``:
  an ``error`` frame (code -109); ``reject``: an ``error`` frame (code -103).
- ``zigbee2mqtt_lock`` / ``zigbee2mqtt_switch`` (id = friendly name F under ``base_topic`` B):
  availability ``B/F/availability`` ``{"state": "online"}``. ``B/F/set`` takes ``{"state":
  "LOCK"}`` or ``{"state": "ON"}`` / ``{"state_l2": "ON"}``; after every set the device's whole
  state JSON goes to ``B/F`` (changed or not, with ``linkquality`` and, for locks, ``battery``),
  and so it does on ``B/F/get`` (the state read from the device; not retained).
  Mode ``fail``: a lock reports ``lock_state: not_fully_locked``; a switch reports its unchanged
  state. ``reject``: no answer. Offline (mode ``offline``): ``{"state": "offline"}``.
- ``esphome_lock`` / ``esphome_switch`` (id = topic prefix P): availability ``P/status``.
  ``P/lock/<object id>/command`` ``LOCK``/``UNLOCK`` -> ``P/lock/<object id>/state``
  ``LOCKED``/``UNLOCKED`` (retained); ``P/switch/<object id>/command`` ``ON``/``OFF`` ->
  ``.../state``. Like ESPHome, a state is published only when it changes. Mode ``fail``: the lock
  reports ``JAMMED``; a switch stays as it is (and so says nothing).
"""

from __future__ import annotations

from collections.abc import Callable
import json
import logging
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from .devices import FAMILIES, Behaviour, Kind, Mode, SimulatedDevice, _Session

_LOGGER = logging.getLogger("simulator")

type Pending = list[paho.MQTTMessageInfo | None]


class ShellyDevice(SimulatedDevice):
    """A Shelly Gen2+ relay with RPC over MQTT and generic status updates enabled."""

    def _contract(self) -> None:
        self.availability_topic = f"{self.device_id}/online"
        self.payload_online, self.payload_offline = "true", "false"
        self._subscriptions = [f"{self.device_id}/rpc"]

    def _announce_state(self, session: _Session) -> Pending:
        return [self._publish_relay(index, session) for index in self._relay_on]

    def _publish_relay(
        self, index: int, session: _Session | None = None
    ) -> paho.MQTTMessageInfo | None:
        with self._state_lock:
            on = self._relay_on[index]
        status = {"id": index - 1, "source": "simulator", "output": on, "apower": 0.0}
        return self._publish(
            f"{self.device_id}/status/switch:{index - 1}",
            json.dumps(status),
            retain=True,
            session=session,
        )

    def _handler(self) -> Callable[[str, str, Behaviour], None]:
        return self._handle_rpc

    def _handle_rpc(self, _topic: str, payload: str, behaviour: Behaviour) -> None:
        try:
            frame = json.loads(payload)
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or "id" not in frame or not frame.get("src"):
            _LOGGER.info("%s    (ignored: not a request frame with id and src)", self)
            return
        src = str(frame["src"])

        def answer(**body: Any) -> None:
            reply = {"id": frame["id"], "src": self.device_id, "dst": src, **body}
            self._publish(f"{src}/rpc", json.dumps(reply), retain=False)

        method = frame.get("method")
        params = frame.get("params") or {}
        if behaviour.mode is Mode.REJECT:
            answer(error={"code": -103, "message": "Rejected by the device (simulated)"})
        elif behaviour.mode is Mode.FAIL:
            answer(error={"code": -109, "message": "Output is overheated (simulated failure)"})
        elif method == "Shelly.Reboot":
            answer(result=None)
            self._firmware.call_later(0.05, lambda: self._reboot(behaviour.reboot_delay))
        elif method != "Switch.Set":
            answer(error={"code": 404, "message": f"No handler for {method}"})
        elif not isinstance(params, dict) or not isinstance(params.get("on"), bool):
            answer(error={"code": -103, "message": "Missing required argument 'on'!"})
        elif type(params.get("id")) is not int or not 0 <= params["id"] < self.relays:
            message = f"Argument 'id', value {params.get('id')} not found!"
            answer(error={"code": -105, "message": message})
        else:
            self._switch_set(params, answer)

    def _switch_set(self, params: dict[str, Any], answer: Callable[..., None]) -> None:
        index = params["id"] + 1
        with self._state_lock:
            was_on = self._relay_on[index]
        generation = self._set_relay(index, params["on"])
        answer(result={"was_on": was_on})
        self._publish_relay(index)
        toggle_after = params.get("toggle_after")
        if isinstance(toggle_after, int | float) and toggle_after > 0:

            def flip_back() -> None:
                with self._state_lock:
                    current = self._relay_gen[index] == generation
                if current:
                    self._set_relay(index, not params["on"])
                    self._publish_relay(index)

            self._firmware.call_later(float(toggle_after), flip_back)


class Zigbee2MqttDevice(SimulatedDevice):
    """A Zigbee lock or switch as Zigbee2MQTT shows it (availability enabled)."""

    def _contract(self) -> None:
        topic = f"{self.base_topic}/{self.device_id}"
        self.state_topic = topic
        self.availability_topic = f"{topic}/availability"
        self.payload_online = json.dumps({"state": "online"})
        self.payload_offline = json.dumps({"state": "offline"})
        self._subscriptions = [f"{topic}/set", f"{topic}/get"]
        self._jammed = False

    def relay_key(self, index: int) -> str:
        """Return the state property of relay ``index`` (``state`` on a one-gang switch)."""
        return "state" if self.relays == 1 else f"state_l{index}"

    def _state_json(self) -> str:
        with self._state_lock:
            if self.kind is Kind.ZIGBEE2MQTT_LOCK:
                lock_state = "locked" if self._locked else "unlocked"
                if self._jammed:
                    lock_state = "not_fully_locked"
                state: dict[str, Any] = {
                    "state": "LOCK" if self._locked else "UNLOCK",
                    "lock_state": lock_state,
                    "battery": 97,
                }
            else:
                state = {
                    self.relay_key(index): "ON" if on else "OFF"
                    for index, on in self._relay_on.items()
                }
        return json.dumps(state | {"linkquality": 120})

    def _publish_state(self, session: _Session | None = None) -> paho.MQTTMessageInfo | None:
        return self._publish(self.state_topic, self._state_json(), retain=False, session=session)

    def _announce_state(self, session: _Session) -> Pending:
        return [self._publish_state(session)]

    def _publish_relay(
        self, index: int, session: _Session | None = None
    ) -> paho.MQTTMessageInfo | None:
        return self._publish_state(session)

    def _handler(self) -> Callable[[str, str, Behaviour], None]:
        return self._handle_set

    def _handle_set(self, topic: str, payload: str, behaviour: Behaviour) -> None:
        if topic.endswith("/get"):
            # Zigbee2MQTT reads the asked properties from the device and publishes the state.
            if behaviour.mode is not Mode.SILENT:
                self._publish_state()
            return
        try:
            command = json.loads(payload)
        except ValueError:
            command = None
        if not isinstance(command, dict):
            _LOGGER.info("%s    (ignored: /set takes a JSON object)", self)
            return
        if behaviour.mode is Mode.REJECT:
            _LOGGER.info("%s    (reject: no answer)", self)
            return
        if self.kind is Kind.ZIGBEE2MQTT_LOCK:
            self._set_lock(command, behaviour)
        else:
            self._set_switches(command, behaviour)
        self._publish_state()

    def _set_lock(self, command: dict[str, Any], behaviour: Behaviour) -> None:
        target = str(command.get("state", "")).upper()
        if target not in ("LOCK", "UNLOCK"):
            return
        with self._state_lock:
            if behaviour.mode is Mode.FAIL:
                self._locked, self._jammed = True, True  # the bolt stuck half-way
            else:
                self._locked, self._jammed = target == "LOCK", False

    def _set_switches(self, command: dict[str, Any], behaviour: Behaviour) -> None:
        for index in self._relay_on:
            word = str(command.get(self.relay_key(index), "")).upper()
            if word not in ("ON", "OFF", "TOGGLE") or behaviour.mode is Mode.FAIL:
                continue
            with self._state_lock:
                on = not self._relay_on[index] if word == "TOGGLE" else word == "ON"
            self._set_relay(index, on)


class EspHomeDevice(SimulatedDevice):
    """An ESPHome node with ``mqtt:``: one lock, or switches (one per relay)."""

    def _contract(self) -> None:
        prefix = self.device_id
        self.availability_topic = f"{prefix}/status"
        self.payload_online, self.payload_offline = "online", "offline"
        if self.kind is Kind.ESPHOME_LOCK:
            self._lock_id = self.object_ids[0] if self.object_ids else "lock"
            self._subscriptions = [f"{prefix}/lock/{self._lock_id}/command"]
        else:
            ids = self.object_ids or tuple(f"relay_{i}" for i in range(1, self.relays + 1))
            if len(ids) != self.relays:
                raise ValueError("object_ids must name every relay")
            self._switch_ids = ids
            self._subscriptions = [f"{prefix}/switch/+/command"]
        self._lock_word = "LOCKED"

    def _announce_state(self, session: _Session) -> Pending:
        if self.kind is Kind.ESPHOME_LOCK:
            return [self._publish_lock_word(session)]
        return [self._publish_relay(index, session) for index in self._relay_on]

    def _publish_lock_word(self, session: _Session | None = None) -> paho.MQTTMessageInfo | None:
        return self._publish(
            f"{self.device_id}/lock/{self._lock_id}/state",
            self._lock_word,
            retain=True,
            session=session,
        )

    def _publish_relay(
        self, index: int, session: _Session | None = None
    ) -> paho.MQTTMessageInfo | None:
        with self._state_lock:
            payload = "ON" if self._relay_on[index] else "OFF"
        topic = f"{self.device_id}/switch/{self._switch_ids[index - 1]}/state"
        return self._publish(topic, payload, retain=True, session=session)

    def _handler(self) -> Callable[[str, str, Behaviour], None]:
        return self._handle_command

    def _handle_command(self, topic: str, payload: str, behaviour: Behaviour) -> None:
        word = payload.strip().upper()
        if behaviour.mode is Mode.REJECT:
            _LOGGER.info("%s    (reject: no answer)", self)
            return
        if self.kind is Kind.ESPHOME_LOCK:
            self._lock_command(word, behaviour)
            return
        object_id = topic.split("/")[-2]
        if object_id not in self._switch_ids or word not in ("ON", "OFF", "TOGGLE"):
            _LOGGER.info("%s    (ignored: unknown switch or payload)", self)
            return
        index = self._switch_ids.index(object_id) + 1
        with self._state_lock:
            current = self._relay_on[index]
        target = not current if word == "TOGGLE" else word == "ON"
        if behaviour.mode is Mode.FAIL or target == current:
            _LOGGER.info("%s    (no change: ESPHome publishes only changes)", self)
            return
        self._set_relay(index, target)
        self._publish_relay(index)

    def _lock_command(self, word: str, behaviour: Behaviour) -> None:
        if word not in ("LOCK", "UNLOCK"):
            _LOGGER.info("%s    (ignored: LOCK or UNLOCK)", self)
            return
        new = "JAMMED" if behaviour.mode is Mode.FAIL else f"{word}ED"
        with self._state_lock:
            if new == self._lock_word:
                return  # ESPHome publishes only changes
            self._lock_word = new
            self._locked = new == "LOCKED"
        self._publish_lock_word()


def bridge_devices(devices: list[Zigbee2MqttDevice]) -> list[dict[str, Any]]:
    """Return Zigbee2MQTT's ``bridge/devices`` list for ``devices`` (with its coordinator)."""
    entries: list[dict[str, Any]] = [
        {
            "ieee_address": "0x00124b0000000000",
            "type": "Coordinator",
            "friendly_name": "Coordinator",
            "supported": True,
            "disabled": False,
            "definition": None,
            "interview_completed": True,
        }
    ]
    for number, device in enumerate(devices, start=1):
        if device.kind is Kind.ZIGBEE2MQTT_LOCK:
            exposes: list[dict[str, Any]] = [
                {
                    "type": "lock",
                    "features": [
                        {
                            "type": "binary",
                            "name": "state",
                            "property": "state",
                            "value_on": "LOCK",
                            "value_off": "UNLOCK",
                        },
                        {"type": "enum", "name": "lock_state", "property": "lock_state"},
                    ],
                },
                {"type": "numeric", "name": "battery", "property": "battery"},
            ]
        else:
            exposes = [
                {
                    "type": "switch",
                    "endpoint": f"l{index}" if device.relays > 1 else None,
                    "features": [
                        {
                            "type": "binary",
                            "name": "state",
                            "property": device.relay_key(index),
                            "value_on": "ON",
                            "value_off": "OFF",
                        }
                    ],
                }
                for index in range(1, device.relays + 1)
            ]
        entries.append(
            {
                "ieee_address": f"0x00158d00000000{number:02x}",
                "type": "Router",
                "friendly_name": device.device_id,
                "supported": True,
                "disabled": False,
                "interview_completed": True,
                "definition": {
                    "model": "SIM-LOCK"
                    if device.kind is Kind.ZIGBEE2MQTT_LOCK
                    else f"SIM-{device.relays}G",
                    "vendor": "IoTee simulator",
                    "exposes": exposes,
                },
            }
        )
    return entries


class Zigbee2MqttBridge:
    """The bridge's own retained topics: ``B/bridge/state`` and ``B/bridge/devices``."""

    def __init__(
        self,
        host: str,
        port: int,
        devices: list[Zigbee2MqttDevice],
        base_topic: str = "zigbee2mqtt",
    ) -> None:
        """Describe the bridge of ``devices``; ``start`` publishes its device list."""
        self.topic = f"{base_topic}/bridge/devices"
        self.payload = json.dumps(bridge_devices(devices))
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-z2m-{base_topic}")
        self._client.will_set(
            f"{base_topic}/bridge/state", '{"state": "offline"}', qos=1, retain=True
        )
        self._host, self._port, self._base = host, port, base_topic

    def start(self, timeout: float = 10.0) -> Zigbee2MqttBridge:
        """Connect; publish the bridge state and the device list, retained."""
        self._client.connect(self._host, self._port)
        self._client.loop_start()
        for topic, payload in (
            (f"{self._base}/bridge/state", '{"state": "online"}'),
            (self.topic, self.payload),
        ):
            self._client.publish(topic, payload, qos=1, retain=True).wait_for_publish(timeout)
        _LOGGER.info(
            "zigbee2mqtt bridge -> %s (%d devices)", self.topic, len(json.loads(self.payload))
        )
        return self

    def stop(self) -> None:
        """Say offline and disconnect (the device list stays retained, as Zigbee2MQTT's does)."""
        self._client.publish(
            f"{self._base}/bridge/state", '{"state": "offline"}', qos=1, retain=True
        ).wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()


FAMILIES.update(
    {
        Kind.SHELLY_GEN2: ShellyDevice,
        Kind.ZIGBEE2MQTT_LOCK: Zigbee2MqttDevice,
        Kind.ZIGBEE2MQTT_SWITCH: Zigbee2MqttDevice,
        Kind.ESPHOME_LOCK: EspHomeDevice,
        Kind.ESPHOME_SWITCH: EspHomeDevice,
    }
)
