"""What a loaded IoTee hub entry holds at run time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity

from .const import DOMAIN
from .core.device_config import DeviceConfig
from .core.store import AsyncCommandStore
from .engine import CommandEngine


@dataclass(slots=True)
class IoteeRuntime:
    """The engine and store of a loaded hub."""

    engine: CommandEngine
    store: AsyncCommandStore
    devices: dict[str, DeviceConfig] = field(default_factory=dict)
    """Configured devices by config subentry id."""
    adders: dict[Platform, Callable[[str, DeviceConfig], None]] = field(default_factory=dict)
    """Per platform: add that platform's entities of one device (subentry id, config)."""
    entities: dict[str, list[Entity]] = field(default_factory=dict)
    """The entities of each device, by config subentry id."""
    sync_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while the devices are brought in line with the subentries (``device_sync``)."""


type IoteeConfigEntry = ConfigEntry[IoteeRuntime]


def loaded_engine(hass: HomeAssistant) -> CommandEngine | None:
    """Return the engine of the loaded hub, or None while no hub is loaded.

    Every door (REST, actions, websocket, panel) finds the engine through this one function.
    """
    entries: list[IoteeConfigEntry] = hass.config_entries.async_loaded_entries(DOMAIN)
    return entries[0].runtime_data.engine if entries else None
