"""Diagnostics: hub options, devices with their live state, open and recent commands."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .core.representation import command_to_dict
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
            "devices": [
                {
                    "hardware_id": config.hardware_id,
                    "name": config.name,
                    "device_type": config.device_type.name,
                    "relays": config.relays,
                    "relay_locks": sorted(config.relay_locks),
                    "topic_id": config.topic_id,
                    "state": asdict(engine.states[config.hardware_id]),
                }
                for config in engine.devices.values()
            ],
            "subscriptions": engine.subscription_filters,
            "open_commands": [command_to_dict(record) for record in engine.open_commands()],
            "recent_commands": [command_to_dict(record) for record in recent],
            "stored_commands": await entry.runtime_data.store.count(),
        },
        TO_REDACT,
    )
