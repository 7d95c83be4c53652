"""Base entity: device info, availability, and the status of the entity's last command.

An entity writes its state when its command changes, when HA's MQTT connection changes, and on
a device report only when what it shows changed (its availability or state): a relay's report
redraws that relay's entities, not all 16 of an 8-relay controller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from homeassistant.components import mqtt
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .const import (
    ATTR_LAST_COMMAND,
    ATTR_LAST_COMMAND_AT,
    ATTR_LAST_COMMAND_ERROR,
    ATTR_LAST_COMMAND_ID,
    ATTR_LAST_COMMAND_STATUS,
    ATTR_QUEUED_UNTIL,
    DOMAIN,
)
from .core.device_config import DeviceConfig, DeviceState
from .core.errors import CommandError
from .core.model import CommandRecord, CommandStatus, isoformat_z
from .core.store import StoreError
from .engine import CommandEngine
from .entity_limit import entities_ha_accepts
from .runtime import IoteeConfigEntry

type EntityBuilder = Callable[[CommandEngine, DeviceConfig], Iterable[Entity]]


SETUP_BATCH = 100
"""Devices whose entities a platform adds before it lets the event loop run (large homes)."""


async def async_setup_device_entities(
    hass: HomeAssistant,
    entry: IoteeConfigEntry,
    platform: Platform,
    async_add_entities: AddConfigEntryEntitiesCallback,
    build: EntityBuilder,
) -> None:
    """Add one platform's entities for every device, and keep how to add them for one device.

    HA adds each device's entities at once (an eager task that never has to wait), so the
    platform yields to the event loop after every ``SETUP_BATCH`` devices: a home of thousands
    of devices stalls the loop for one batch at a time, not for all of them.

    A device added or reconfigured later gets its entities through ``runtime.adders`` without
    reloading the hub, so the other devices' entities are not touched.

    Entities HA would refuse (its limit per config entry, ``entity_limit``) are kept in
    ``runtime.entities`` (the repair issue counts them) but not offered to HA.
    """
    runtime = entry.runtime_data
    device_registry = dr.async_get(hass)

    @callback
    def add(subentry_id: str, config: DeviceConfig) -> None:
        entities = list(build(runtime.engine, config))
        runtime.entities.setdefault(subentry_id, []).extend(entities)
        offered = entities_ha_accepts(hass, entry.entry_id, platform, entities)
        if not offered:
            return
        # The hub registered the device before its entities are built (device_sync): link
        # them to it, so that HA need not look it up again (or update it) for each entity.
        device = None if config.device_id is None else device_registry.async_get(config.device_id)
        for entity in offered:
            entity.device_entry = device
        async_add_entities(offered, config_subentry_id=subentry_id)

    runtime.adders[platform] = add
    for done, (subentry_id, config) in enumerate(list(runtime.devices.items()), 1):
        add(subentry_id, config)
        if done % SETUP_BATCH == 0:
            await asyncio.sleep(0)


class IoteeEntity(Entity):
    """An entity of one IoTee device acting on one target (the lock, a relay, or reboot)."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, engine: CommandEngine, config: DeviceConfig, key: str, target: str) -> None:
        """Bind the entity to its device and target."""
        self.engine = engine
        self.config = config
        self._target = (config.hardware_id, target)
        self._last: CommandRecord | None = None
        self._shown: tuple[bool, StateType] | None = None
        """Availability and state as last written (what a device report may leave unchanged)."""
        self._attr_unique_id = f"{config.hardware_id}_{key}"

    @property
    def device_info(self) -> DeviceInfo | None:
        """Return the device's registry link only when the entity is not linked to its
        registry device already (``device_entry``, set as the platform adds it).

        For an entity with a device info HA looks the device up, and updates it, in the device
        registry: 10,000 times at the start of a large home, whose hub has registered every
        device just before. Built when HA asks: kept on each entity it was three objects more
        for the collector.
        """
        if self.device_entry is not None:
            return None
        return DeviceInfo(identifiers={(DOMAIN, self.config.hardware_id)})

    @property
    def state_data(self) -> DeviceState:
        """Return what the device reported."""
        return self.engine.states[self.config.hardware_id]

    @property
    def available(self) -> bool:
        """Available while MQTT is connected and the device has not said it is offline."""
        if not mqtt.is_connected(self.hass):
            return False
        # A device that keeps commands while offline stays usable: they wait for it.
        return self.state_data.online is not False or self.config.delivery.queue.keep_minutes > 0

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the status of the last command sent through this entity's target."""
        last = self._last
        attributes = {
            ATTR_LAST_COMMAND_ID: None if last is None else last.command_id,
            ATTR_LAST_COMMAND: None if last is None else last.command,
            ATTR_LAST_COMMAND_STATUS: None if last is None else last.status.value,
            ATTR_LAST_COMMAND_AT: None if last is None else isoformat_z(last.created_at),
        }
        if last is not None and last.queued and last.queued_until is not None:
            attributes[ATTR_QUEUED_UNTIL] = isoformat_z(last.queued_until)
        if last is not None and last.error is not None:
            # Only when there was one: the UI would show "Last command error: Unknown".
            attributes[ATTR_LAST_COMMAND_ERROR] = last.error
        return attributes

    async def async_added_to_hass(self) -> None:
        """Follow device state, MQTT connection and this target's commands.

        The last command comes from the engine, which keeps it across reloads and reads it from
        the store at start: the ``last_command_*`` attributes survive both.
        """
        self._last = self.engine.last_command(self._target)
        self.async_on_remove(
            self.engine.add_device_listener(self._on_device, self.config.hardware_id)
        )
        self.async_on_remove(self.engine.add_command_listener(self._on_command, self._target))
        self.async_on_remove(self.engine.add_connection_listener(self._on_connection))

    @callback
    def _async_write_ha_state(self) -> None:
        """Write the state, remembering the availability and state it shows."""
        self._shown = (self.available, self.state)
        super()._async_write_ha_state()

    @callback
    def _on_device(self, config: DeviceConfig, state: DeviceState) -> None:
        """The device reported: write only when this entity's availability or state changed.

        Attributes are not compared: they only change with this entity's commands, which
        write themselves (``_on_command``).
        """
        if config.hardware_id != self.config.hardware_id:
            return
        if self._shown != (self.available, self.state):
            self.async_write_ha_state()

    @callback
    def _on_connection(self, connected: bool) -> None:
        self.async_write_ha_state()

    @callback
    def _on_command(self, record: CommandRecord, old: CommandStatus | None) -> None:
        """A command of this target is new or changed: show it, unless it is older than the
        one shown (a command superseded by the newer one, an older one's late answer): its
        news is on its record and event; the entity never goes back to it."""
        if record.target != self._target:
            return
        last = self._last
        if old is not None and last is not None and record.command_id != last.command_id:
            return
        self._last = record
        self.async_write_ha_state()

    async def _async_run(self, command: str, relay: int | None = None) -> CommandRecord:
        """Send a command, wait for its end, raise a translated error unless it completed (or,
        to a device that confirms nothing, was published)."""
        try:
            record = await self.engine.async_submit(
                self.config.hardware_id,
                command,
                relay,
                source="entity",
                caller=self._context_user(),
            )
            if record.queued:
                return record  # accepted; it goes out when the device is back
            if not record.finished:  # else the record in hand is its end: no store read
                record = await self.engine.async_wait(
                    record.command_id, self.engine.settings.command_timeout + 1
                )
        except (CommandError, StoreError) as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_error",
                translation_placeholders={"error": str(err)},
            ) from err
        if record.status is CommandStatus.COMPLETED or (
            record.finished and not record.status.is_terminal
        ):
            return record  # confirmed, or sent to a device that never says more
        placeholders = {
            "command": record.command,
            "name": self.config.name if relay is None else f"{self.config.name} relay {relay}",
            "error": record.error or record.status.value,
        }
        key = "command_timeout" if record.status is CommandStatus.TIMEOUT else "command_failed"
        raise HomeAssistantError(
            translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
        )

    def _context_user(self) -> str | None:
        context = self._context
        return None if context is None else context.user_id
