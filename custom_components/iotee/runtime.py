"""What a loaded IoTee hub entry holds at run time."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from .core.store import AsyncCommandStore
from .engine import CommandEngine


@dataclass(slots=True)
class IoteeRuntime:
    """The engine and store of a loaded hub."""

    engine: CommandEngine
    store: AsyncCommandStore


type IoteeConfigEntry = ConfigEntry[IoteeRuntime]
