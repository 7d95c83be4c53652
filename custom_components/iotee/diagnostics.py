"""Diagnostics: hub options, devices with their live state, open and recent commands.

From a device's page: that device alone, with its own open and recent commands.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceEntry

from .const import DOMAIN
from .core.device_config import DeviceConfig
from .core.representation import command_to_dict
from .engine import CommandEngine
from .runtime import IoteeConfigEntry

TO_REDACT = {"caller", "params", "api_keys", "secret", "key_hash"}
RECENT_COMMANDS = 20


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: IoteeConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for the hub."""
    engine = entry.runtime_data.engine
    recent = await engine.async_list(None, RECENT_COMMANDS)
    return async_redact_data(
        {
            "options": dict(entry.options),
            "devices": [_device(engine, config) for config in engine.devices.values()],
            "subscriptions": engine.subscription_filters,
            "open_commands": [command_to_dict(record) for record in engine.open_commands()],
            "recent_commands": [command_to_dict(record) for record in recent],
            "stored_commands": await entry.runtime_data.store.count(),
        },
        TO_REDACT,
    )


def _device(engine: CommandEngine, config: DeviceConfig) -> dict[str, Any]:
    return {
        "hardware_id": config.hardware_id,
        "name": config.name,
        "device_type": config.device_type.name,
        "relays": config.relays,
        "relay_locks": sorted(config.relay_locks),
        "topic_id": config.topic_id,
        "state": asdict(engine.states[config.hardware_id]),
    }


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: IoteeConfigEntry, device: DeviceEntry
) -> dict[str, Any]:
    """Return diagnostics for one device: its configuration, live state and commands."""
    engine = entry.runtime_data.engine
    hardware_id = next(ident for domain, ident in device.identifiers if domain == DOMAIN)
    config = engine.devices[hardware_id]
    recent = await engine.async_list(hardware_id, RECENT_COMMANDS)
    return async_redact_data(
        {
            "device": _device(engine, config),
            "open_commands": [
                command_to_dict(record)
                for record in engine.open_commands()
                if record.hardware_id == hardware_id
            ],
            "recent_commands": [command_to_dict(record) for record in recent],
        },
        TO_REDACT,
    )
