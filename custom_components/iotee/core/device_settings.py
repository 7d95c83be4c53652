"""A device's stored settings: checking what the user entered, and building its DeviceConfig.

The config flow stores each device as a dict (a config subentry's data); ``device_config`` turns
one into a ``DeviceConfig``. ``check_setting`` returns the error key (translated by the flow) of a
bad value, or None; topics IoTee publishes to never hold MQTT wildcards.
"""

from __future__ import annotations

from collections.abc import Mapping
import re
from typing import Any

from .custom_device import CUSTOM, custom_device_type
from .delivery_rules import delivery_policy
from .device_config import DeviceConfig
from .device_types import DEVICE_TYPES
from .topic_check import topic_error

KEY_HARDWARE_ID = "hardware_id"
KEY_DEVICE_TYPE = "device_type"
KEY_RELAYS = "relays"
KEY_MQTT_TOPIC = "mqtt_topic"
KEY_RELAY_LOCKS = "relay_locks"
KEY_RELAY_KEYS = "relay_keys"

OBJECT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
"""Device-side names (ESPHome object ids, Zigbee2MQTT state properties): one topic level."""
JOG_SECONDS = (0.1, 3600.0)

ERROR_OBJECT_ID = "invalid_object_id"
ERROR_JOG_SECONDS = "invalid_jog_seconds"
ERROR_RELAY_KEYS = "invalid_relay_keys"


def check_setting(name: str, value: str) -> str | None:
    """Return the error key of a bad value for setting ``name``, or None when it is fine."""
    if name == "object_id":
        return None if OBJECT_ID_PATTERN.match(value) else ERROR_OBJECT_ID
    if name == "jog_seconds":
        try:
            seconds = float(value)
        except ValueError:
            return ERROR_JOG_SECONDS
        low, high = JOG_SECONDS
        return None if low <= seconds <= high else ERROR_JOG_SECONDS
    return topic_error(value)


def normalize_setting(name: str, value: object) -> str:
    """Return a setting as it is stored (numbers without trailing zeros)."""
    if name == "jog_seconds" and isinstance(value, int | float):
        return f"{float(value):g}"
    return str(value).strip()


def parse_relay_keys(text: str, relays: int) -> tuple[str, ...] | None:
    """Parse "a, b, c" into one key per relay; () for empty text; None when it is wrong."""
    if not text.strip():
        return ()
    keys = tuple(part.strip() for part in text.split(","))
    if len(keys) != relays or len(set(keys)) != len(keys):
        return None
    if not all(OBJECT_ID_PATTERN.match(key) for key in keys):
        return None
    return keys


def device_config(data: Mapping[str, Any], name: str) -> DeviceConfig:
    """Build the DeviceConfig of a stored device (a config subentry's data)."""
    if data[KEY_DEVICE_TYPE] == CUSTOM:
        dtype = custom_device_type(data)
    else:
        dtype = DEVICE_TYPES[data[KEY_DEVICE_TYPE]]
    relays = int(data.get(KEY_RELAYS, 0))
    return DeviceConfig(
        hardware_id=data[KEY_HARDWARE_ID],
        name=name,
        device_type=dtype,
        relays=relays,
        mqtt_id=data.get(KEY_MQTT_TOPIC, ""),
        # A relay beyond the device's relays (their count was lowered) drives no lock.
        relay_locks=frozenset(
            int(relay) for relay in data.get(KEY_RELAY_LOCKS, []) if 1 <= int(relay) <= relays
        ),
        settings={key: str(data[key]) for key in dtype.settings if key in data},
        relay_keys=tuple(str(key) for key in data.get(KEY_RELAY_KEYS, ())),
        delivery=delivery_policy(data),
    )
