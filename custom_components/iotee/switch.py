"""Switches: one per relay that is not configured as a lock."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .core.device_config import DeviceConfig
from .engine import CommandEngine
from .entity import IoteeEntity, async_setup_device_entities
from .runtime import IoteeConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: IoteeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a switch per relay."""
    await async_setup_device_entities(hass, entry, Platform.SWITCH, async_add_entities, _switches)


def _switches(engine: CommandEngine, config: DeviceConfig) -> list[SwitchEntity]:
    return [
        RelaySwitch(engine, config, relay)
        for relay in range(1, config.relays + 1)
        if relay not in config.relay_locks
    ]


class RelaySwitch(IoteeEntity, SwitchEntity):
    """A relay: ON latches closed, OFF latches open; state from the relay state topic."""

    _attr_translation_key = "relay"

    def __init__(self, engine: CommandEngine, config: DeviceConfig, relay: int) -> None:
        """Create the switch of one relay."""
        super().__init__(engine, config, f"relay_{relay}", f"relay:{relay}")
        self._relay = relay
        self._attr_translation_placeholders = {"relay": str(relay)}
        self._attr_assumed_state = config.device_type.relay_state_topic is None

    @property
    def is_on(self) -> bool | None:
        """Return the relay state the device last reported."""
        return self.state_data.relays.get(self._relay)

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Close the relay and wait for the device's confirmation."""
        await self._async_run("ON", self._relay)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Open the relay and wait for the device's confirmation."""
        await self._async_run("OFF", self._relay)
