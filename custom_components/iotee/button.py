"""Buttons: JOG per relay, and reboot where the device type supports it."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity
from homeassistant.components.button.const import ButtonDeviceClass
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .core.device_config import DeviceConfig
from .core.model import CommandRecord, CommandStatus
from .engine import CommandEngine
from .entity import IoteeEntity, async_setup_device_entities
from .runtime import IoteeConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: IoteeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a JOG button per relay and a reboot button."""
    await async_setup_device_entities(hass, entry, Platform.BUTTON, async_add_entities, _buttons)


def _buttons(engine: CommandEngine, config: DeviceConfig) -> list[ButtonEntity]:
    buttons: list[ButtonEntity] = []
    if "JOG" in config.device_type.commands:
        buttons.extend(JogButton(engine, config, relay) for relay in range(1, config.relays + 1))
    if config.device_type.can_reboot:
        buttons.append(RebootButton(engine, config))
    return buttons


class JogButton(IoteeEntity, ButtonEntity):
    """Close a relay briefly, then open it (the pulse length is the device's own setting).

    Its ``last_command_*`` attributes are the relay's last JOG: it writes only when a JOG of
    its relay changes, not with every ON/OFF of the relay's switch.
    """

    _attr_translation_key = "jog"

    def __init__(self, engine: CommandEngine, config: DeviceConfig, relay: int) -> None:
        """Create the JOG button of one relay."""
        super().__init__(engine, config, f"relay_{relay}_jog", f"relay:{relay}")
        self._relay = relay
        self._attr_translation_placeholders = {"relay": str(relay)}

    async def async_added_to_hass(self) -> None:
        """Show the relay's last command when it was a JOG (the store keeps one per relay)."""
        await super().async_added_to_hass()
        if self._last is not None and self._last.command != "JOG":
            self._last = None

    @callback
    def _on_command(self, record: CommandRecord, old: CommandStatus | None) -> None:
        """Only the relay's JOG commands are this button's: ON/OFF are its switch's."""
        if record.command == "JOG":
            super()._on_command(record, old)

    async def async_press(self) -> None:
        """JOG the relay and wait for the device's confirmation."""
        await self._async_run("JOG", self._relay)


class RebootButton(IoteeEntity, ButtonEntity):
    """Reboot the device; completes when it comes back online."""

    _attr_device_class = ButtonDeviceClass.RESTART
    _attr_entity_category = EntityCategory.CONFIG

    def __init__(self, engine: CommandEngine, config: DeviceConfig) -> None:
        """Create the reboot button."""
        super().__init__(engine, config, "reboot", "reboot")

    async def async_press(self) -> None:
        """Reboot the device and wait until it is back online."""
        await self._async_run("reboot")
