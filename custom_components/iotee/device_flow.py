"""Forms of the add-device flow for the families' settings (topic prefix, friendly name, ...),
and the Zigbee2MQTT devices to pick from.

The settings themselves, their defaults and checks are the core's (``DeviceType.settings``,
``core/device_settings.py``); this module only turns them into form schemas and error maps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)
import probatio as vol  # HA's schema library; `voluptuous` resolves to its shim at run time

from .core.device_settings import (
    JOG_SECONDS,
    KEY_RELAY_KEYS,
    check_setting,
    device_config,
    normalize_setting,
    parse_relay_keys,
)
from .core.device_types import DeviceType
from .core.zigbee2mqtt import BridgeDevice, configured


def settings_schema(dtype: DeviceType, current: Mapping[str, Any], hardware_id: str) -> vol.Schema:
    """Return the form of ``dtype``'s settings, filled with ``current`` or the defaults."""
    defaults = dtype.default_settings(hardware_id) | {
        key: str(value) for key, value in current.items() if key in dtype.settings
    }
    schema: dict[Any, Any] = {}
    for name in dtype.settings:
        if name == "jog_seconds":
            low, high = JOG_SECONDS
            selector: Any = NumberSelector(
                NumberSelectorConfig(
                    min=low,
                    max=high,
                    step=0.1,
                    mode=NumberSelectorMode.BOX,
                    unit_of_measurement="s",
                )
            )
            schema[vol.Required(name, default=float(defaults.get(name, "1")))] = selector
        else:
            schema[vol.Required(name, default=defaults.get(name, ""))] = TextSelector()
    return vol.Schema(schema)


def check_settings(
    dtype: DeviceType, user_input: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """Return the settings to store and the errors (field -> translation key)."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name in dtype.settings:
        value = normalize_setting(name, user_input.get(name, ""))
        error = check_setting(name, value)
        if error is not None:
            errors[name] = error
        values[name] = value
    return values, errors


def relay_keys_field(dtype: DeviceType, current: Mapping[str, Any]) -> dict[Any, Any]:
    """Return the optional "one name per relay" field of types whose relays have names."""
    if not dtype.relay_keys:
        return {}
    keys = ", ".join(str(key) for key in current.get(KEY_RELAY_KEYS, ()))
    return {vol.Optional(KEY_RELAY_KEYS, default=keys): TextSelector()}


def check_relay_keys(
    dtype: DeviceType, user_input: Mapping[str, Any], relays: int
) -> list[str] | None:
    """Return the relay names to store (empty: the defaults); None when they are invalid."""
    if not dtype.relay_keys:
        return []
    keys = parse_relay_keys(str(user_input.get(KEY_RELAY_KEYS, "")), relays)
    return None if keys is None else list(keys)


def bridge_choices(
    hass: HomeAssistant, device_type: str, stored: Iterable[Mapping[str, Any]]
) -> list[BridgeDevice]:
    """Return the Zigbee2MQTT devices of ``device_type`` to pick from: listed by the bridge (as
    the loaded hub last heard) and not configured yet (``stored``: the devices' subentry data)."""
    from .runtime import loaded_engine

    engine = loaded_engine(hass)
    if engine is None:
        return []
    configs = [device_config(data, "") for data in stored]
    hardware_ids = {config.hardware_id for config in configs}
    choices: list[BridgeDevice] = []
    for base, devices in sorted(engine.zigbee2mqtt.items()):
        taken = configured(configs, base)
        choices.extend(
            replace(device, base_topic=base)
            for device in devices
            if device.device_type == device_type
            and device.friendly_name not in taken
            and device.ieee_address not in hardware_ids
        )
    return choices


def pick_schema(choices: list[BridgeDevice]) -> vol.Schema:
    """Return the form to pick one of ``choices`` (empty: enter the device by hand)."""
    options = [
        SelectOptionDict(value=str(index), label=device.label)
        for index, device in enumerate(choices)
    ]
    return vol.Schema(
        {
            vol.Optional("bridge_device"): SelectSelector(
                SelectSelectorConfig(options=options, mode=SelectSelectorMode.LIST)
            )
        }
    )


def picked_settings(device: BridgeDevice) -> dict[str, Any]:
    """Return the subentry data a picked Zigbee2MQTT device fills in."""
    data: dict[str, Any] = {"base_topic": device.base_topic, "friendly_name": device.friendly_name}
    if device.relay_keys:
        data |= {"relays": len(device.relay_keys), KEY_RELAY_KEYS: list(device.relay_keys)}
    return data
