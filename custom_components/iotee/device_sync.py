"""Applies the hub's device subentries to the engine, the device registry and the entities.

At setup every device is registered; afterwards a device added, reconfigured or removed is
applied on its own, while the hub stays loaded: the other devices' entities and every command in
flight are not touched (no reload). Home Assistant itself removes a removed subentry's registry
device and entities; its open commands stay tracked until they end.
"""

from __future__ import annotations

import asyncio

from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er

from .const import DOMAIN, SUBENTRY_DEVICE
from .core.device_config import DeviceConfig
from .core.device_settings import device_config
from .runtime import IoteeConfigEntry

MANUFACTURER = "IoTee"

SYNC_BATCH = 100
"""Devices brought in line before the event loop runs again: the setup of a large home (5,000
devices, each looked up in the device registry) is a stall per batch, not one for all of them."""


def device_config_from_subentry(subentry: ConfigSubentry) -> DeviceConfig:
    """Build a DeviceConfig from a device subentry's data."""
    return device_config(subentry.data, subentry.title)


async def async_device_configs(entry: IoteeConfigEntry) -> dict[str, DeviceConfig]:
    """Return the configured devices by subentry id, letting the loop run every
    ``SYNC_BATCH`` devices (building 5,000 at once was a stall of its own)."""
    configs: dict[str, DeviceConfig] = {}
    for subentry_id, subentry in list(entry.subentries.items()):
        if subentry.subentry_type != SUBENTRY_DEVICE:
            continue
        configs[subentry_id] = device_config_from_subentry(subentry)
        if len(configs) % SYNC_BATCH == 0:
            await asyncio.sleep(0)
    return configs


async def async_sync_devices(hass: HomeAssistant, entry: IoteeConfigEntry) -> None:
    """Bring the engine, registry and entities in line with the configured devices.

    One sync at a time: a change made while one runs (it lets the loop run between batches of
    devices) is applied by the next, which waits for it.
    """
    async with entry.runtime_data.sync_lock:
        await _async_sync_devices(hass, entry)


async def _async_sync_devices(hass: HomeAssistant, entry: IoteeConfigEntry) -> None:
    runtime = entry.runtime_data
    engine = runtime.engine
    wanted = await async_device_configs(entry)
    for subentry_id in [sid for sid in runtime.devices if sid not in wanted]:
        gone = runtime.devices.pop(subentry_id)
        runtime.entities.pop(subentry_id, None)
        engine.remove_device(gone.hardware_id)
    configured = {config.hardware_id for config in wanted.values()}
    for hardware_id in [hid for hid in engine.devices if hid not in configured]:
        engine.remove_device(hardware_id)  # removed while the hub was not loaded

    device_registry = dr.async_get(hass)
    for done, (subentry_id, config) in enumerate(wanted.items()):
        if done and done % SYNC_BATCH == 0:
            await asyncio.sleep(0)
        current = runtime.devices.get(subentry_id)
        if current is not None and current.configured_as(config):
            continue
        if current is not None:
            for entity in runtime.entities.pop(subentry_id, []):
                await entity.async_remove()
            if current.hardware_id != config.hardware_id:
                engine.remove_device(current.hardware_id)
        running = engine.devices.get(config.hardware_id)
        if running is None:
            engine.add_device(config)
        elif not running.configured_as(config):
            engine.replace_device(config)
        device = _registered_as(device_registry, entry.entry_id, subentry_id, config)
        if device is None:
            device = device_registry.async_get_or_create(
                config_entry_id=entry.entry_id,
                config_subentry_id=subentry_id,
                identifiers={(DOMAIN, config.hardware_id)},
                name=config.name,
                manufacturer=MANUFACTURER,
                model=config.device_type.model,
                model_id=config.device_type.name,
            )
        engine.set_device_id(config.hardware_id, device.id)
        runtime.devices[subentry_id] = engine.devices[config.hardware_id]
        if runtime.adders:
            for add in runtime.adders.values():
                add(subentry_id, runtime.devices[subentry_id])
            _remove_stale_entities(hass, entry, subentry_id)
    await engine.async_subscribe_devices()


def _registered_as(
    device_registry: dr.DeviceRegistry, entry_id: str, subentry_id: str, config: DeviceConfig
) -> dr.DeviceEntry | None:
    """Return the registry device of ``config`` when it is registered just as it would be (the
    common case at every start): then there is nothing to create or update."""
    device = device_registry.async_get_device_by_identifier((DOMAIN, config.hardware_id), entry_id)
    if device is None or (
        device.config_subentry_id,
        device.name,
        device.manufacturer,
        device.model,
        device.model_id,
    ) != (
        subentry_id,
        config.name,
        MANUFACTURER,
        config.device_type.model,
        config.device_type.name,
    ):
        return None
    return device


def _remove_stale_entities(hass: HomeAssistant, entry: IoteeConfigEntry, subentry_id: str) -> None:
    """Remove registry entries of a reconfigured device that it no longer has (fewer relays)."""
    entity_registry = er.async_get(hass)
    current = {
        entity.unique_id
        for entity in entry.runtime_data.entities.get(subentry_id, [])
        if entity.unique_id is not None
    }
    for registered in er.async_entries_for_config_entry(entity_registry, entry.entry_id):
        if registered.config_subentry_id == subentry_id and registered.unique_id not in current:
            entity_registry.async_remove(registered.entity_id)
