"""What a loaded IoTee hub entry holds at run time."""

from __future__ import annotations

from dataclasses import dataclass, field

from homeassistant.config_entries import ConfigEntry

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


type IoteeConfigEntry = ConfigEntry[IoteeRuntime]
