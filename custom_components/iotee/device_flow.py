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
    BooleanSelector,
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

from .core.delivery_rules import (
    KEY_QUEUE_MINUTES,
    KEY_RETRY_ATTEMPTS,
    KEY_RETRY_BACKOFF,
    KEY_RETRY_NON_IDEMPOTENT,
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    DeliveryPolicy,
    setting_error,
)
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


DELIVERY_KEYS = (KEY_QUEUE_MINUTES, KEY_RETRY_ATTEMPTS, KEY_RETRY_BACKOFF, KEY_RETRY_NON_IDEMPOTENT)
_DEFAULTS = DeliveryPolicy()
_DELIVERY_DEFAULTS: dict[str, Any] = {
    KEY_QUEUE_MINUTES: _DEFAULTS.queue.keep_minutes,
    KEY_RETRY_ATTEMPTS: _DEFAULTS.retry.attempts,
    KEY_RETRY_BACKOFF: _DEFAULTS.retry.backoff,
    KEY_RETRY_NON_IDEMPOTENT: _DEFAULTS.retry.non_idempotent,
}


def delivery_fields(current: Mapping[str, Any], max_queue_minutes: float) -> dict[Any, Any]:
    """Return the form fields of a device's delivery options: keeping its commands while it
    is offline (minutes, 0: off) and retrying them (attempts, backoff, JOG and reboot too)."""

    def default(key: str) -> Any:
        return current.get(key, _DELIVERY_DEFAULTS[key])

    def box(low: float, high: float, step: float, unit: str) -> NumberSelector:
        return NumberSelector(
            NumberSelectorConfig(
                min=low, max=high, step=step, mode=NumberSelectorMode.BOX, unit_of_measurement=unit
            )
        )

    return {
        vol.Optional(KEY_QUEUE_MINUTES, default=float(default(KEY_QUEUE_MINUTES))): box(
            0, max_queue_minutes, 1, "min"
        ),
        vol.Optional(KEY_RETRY_ATTEMPTS, default=int(default(KEY_RETRY_ATTEMPTS))): NumberSelector(
            NumberSelectorConfig(min=1, max=MAX_ATTEMPTS, step=1, mode=NumberSelectorMode.BOX)
        ),
        vol.Optional(KEY_RETRY_BACKOFF, default=float(default(KEY_RETRY_BACKOFF))): box(
            0, MAX_BACKOFF, 0.5, "s"
        ),
        vol.Optional(
            KEY_RETRY_NON_IDEMPOTENT, default=bool(default(KEY_RETRY_NON_IDEMPOTENT))
        ): BooleanSelector(),
    }


def check_delivery(
    user_input: Mapping[str, Any], max_queue_minutes: float
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the delivery options to store (only those that differ from the defaults, so a
    device that keeps them stores nothing) and the errors (field -> translation key)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in DELIVERY_KEYS:
        value = user_input.get(key, _DELIVERY_DEFAULTS[key])
        if key == KEY_RETRY_NON_IDEMPOTENT:
            value = bool(value)
        else:
            error = setting_error(key, value)
            if error is None and key == KEY_QUEUE_MINUTES and float(value) > max_queue_minutes:
                error = "invalid_queue_minutes"
            if error is not None:
                errors[key] = error
                continue
            value = int(value) if key == KEY_RETRY_ATTEMPTS else float(value)
        if value != _DELIVERY_DEFAULTS[key]:
            values[key] = value
    return values, errors
