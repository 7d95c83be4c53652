"""What the websocket API sends: commands (the Commands API shape plus names) and devices."""

from __future__ import annotations

from typing import Any

from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.model import CommandRecord
from custom_components.iotee.core.representation import command_to_dict
from custom_components.iotee.engine import CommandEngine


def caller_user_id(caller: str | None) -> str | None:
    """Return the Home Assistant user behind a record's caller, if a user sent it.

    Actions, entities and the websocket API record the user id itself; the REST APIs record
    ``user:<id>`` for a Home Assistant token and ``key:<id>`` for an integration API key.
    """
    if caller is None or caller.startswith("key:"):
        return None
    return caller.removeprefix("user:")


def caller_api_key(caller: str | None) -> str | None:
    """Return the integration API key id behind a record's caller, if a key sent it."""
    if caller is None or not caller.startswith("key:"):
        return None
    return caller.removeprefix("key:")


def command_out(engine: CommandEngine, record: CommandRecord) -> dict[str, Any]:
    """Return a command for the websocket API: ``command_to_dict`` plus who and which device."""
    config = engine.devices.get(record.hardware_id)
    return command_to_dict(record) | {
        "device_name": None if config is None else config.name,
        "user_id": caller_user_id(record.caller),
        "api_key_id": caller_api_key(record.caller),
    }


def device_out(engine: CommandEngine, config: DeviceConfig) -> dict[str, Any]:
    """Return a configured device: what it is, what it takes and whether it is online."""
    dtype = config.device_type
    return {
        "hardware_id": config.hardware_id,
        "device_id": config.device_id,
        "name": config.name,
        "device_type": dtype.name,
        "relays": config.relays,
        "relay_locks": sorted(config.relay_locks),
        "commands": [
            {"name": spec.name, "kind": spec.kind.value} for spec in dtype.commands.values()
        ],
        "online": engine.states[config.hardware_id].online,
    }
