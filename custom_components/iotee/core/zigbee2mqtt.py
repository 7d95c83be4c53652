"""Zigbee2MQTT's device list (``<base>/bridge/devices``, retained): its locks and switches.

Each entry has ``ieee_address``, ``friendly_name``, ``type`` (``Coordinator``, ``Router``,
``EndDevice``), ``supported``, ``disabled`` and a ``definition`` whose ``exposes`` name what the
device can do: ``{"type": "lock", "features": [...]}`` or ``{"type": "switch", "endpoint": "l2",
"features": [{"name": "state", "property": "state_l2", ...}]}``. IoTee offers the locks and
switches in the add-device flow; anything else (sensors, lights, the coordinator, disabled or
unsupported devices) is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import json
from typing import Any

from .device_config import DeviceConfig
from .device_settings import OBJECT_ID_PATTERN
from .topic_check import topic_error

BRIDGE_DEVICES = "{base_topic}/bridge/devices"
DEFAULT_BASE = "zigbee2mqtt"
LOCK = "zigbee2mqtt_lock"
SWITCH = "zigbee2mqtt_switch"


@dataclass(frozen=True, slots=True)
class BridgeDevice:
    """A lock or switch Zigbee2MQTT knows."""

    device_type: str
    """``zigbee2mqtt_lock`` or ``zigbee2mqtt_switch``."""
    friendly_name: str
    ieee_address: str
    relay_keys: tuple[str, ...] = ()
    """A switch's state properties, one per relay (``state``, or ``state_l1``, ``state_l2``)."""
    model: str = ""
    base_topic: str = DEFAULT_BASE

    @property
    def label(self) -> str:
        """Return how the device is shown to pick from."""
        parts = [self.model] if self.model else []
        if self.relay_keys:
            parts.append(
                f"{len(self.relay_keys)} relay" + ("s" if len(self.relay_keys) > 1 else "")
            )
        return f"{self.friendly_name} ({', '.join(parts)})" if parts else self.friendly_name


def parse_bridge_devices(payload: str) -> tuple[BridgeDevice, ...]:
    """Return the locks and switches of a ``bridge/devices`` message (nothing if unreadable)."""
    try:
        entries = json.loads(payload)
    except ValueError:
        return ()
    if not isinstance(entries, list):
        return ()
    found = (_device(entry) for entry in entries if isinstance(entry, dict))
    return tuple(device for device in found if device is not None)


def _device(entry: dict[str, Any]) -> BridgeDevice | None:
    name = entry.get("friendly_name")
    definition = entry.get("definition")
    if (
        not isinstance(name, str)
        or topic_error(name) is not None
        or entry.get("type") == "Coordinator"
        or entry.get("disabled") is True
        or entry.get("supported") is False
        or not isinstance(definition, dict)
    ):
        return None
    exposes = definition.get("exposes")
    if not isinstance(exposes, list):
        return None
    ieee = str(entry.get("ieee_address", ""))
    model = str(definition.get("model") or "")
    kinds = {expose.get("type") for expose in exposes if isinstance(expose, dict)}
    if "lock" in kinds:
        return BridgeDevice(LOCK, name, ieee, model=model)
    keys = tuple(
        key
        for expose in exposes
        if isinstance(expose, dict) and expose.get("type") == "switch"
        for key in _state_properties(expose)
    )
    if not keys:
        return None
    return BridgeDevice(SWITCH, name, ieee, keys, model)


def _state_properties(expose: dict[str, Any]) -> list[str]:
    features = expose.get("features")
    if not isinstance(features, list):
        return []
    return [
        str(feature["property"])
        for feature in features
        if isinstance(feature, dict)
        and feature.get("name") == "state"
        and isinstance(feature.get("property"), str)
        and OBJECT_ID_PATTERN.match(feature["property"])
    ]


def bridge_topics(devices: Iterable[DeviceConfig]) -> dict[str, str]:
    """Return the device-list topics to follow (by topic, their base topic): Zigbee2MQTT's
    default base, and the base of every configured Zigbee2MQTT device."""
    bases = {DEFAULT_BASE}
    for config in devices:
        if config.device_type.name in (LOCK, SWITCH):
            bases.add(str(config.values()["base_topic"]))
    return {BRIDGE_DEVICES.format(base_topic=base): base for base in sorted(bases)}


def configured(devices: Iterable[DeviceConfig], base: str) -> set[str]:
    """Return the friendly names already configured under ``base``."""
    return {
        str(values["friendly_name"])
        for values in (config.values() for config in devices)
        if values.get("base_topic") == base and "friendly_name" in values
    }
