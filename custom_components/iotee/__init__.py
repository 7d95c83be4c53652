"""IoTee: tracked, device-confirmed commands for MQTT relay and lock controllers."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Any

from homeassistant.components import mqtt
from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, ConfigSubentry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    discovery_flow,
    issue_registry as ir,
)
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.typing import ConfigType

from .api import async_register_api, async_setup_entry_api
from .const import (
    CONF_COMMAND_TIMEOUT,
    CONF_DEVICE_TYPE,
    CONF_HARDWARE_ID,
    CONF_MQTT_TOPIC,
    CONF_RELAY_LOCKS,
    CONF_RELAYS,
    CONF_RETENTION_DAYS,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_RETENTION_DAYS,
    DOMAIN,
    STORE_FILENAME,
    SUBENTRY_DEVICE,
)
from .core.device_config import DeviceConfig
from .core.device_types import DEVICE_TYPES, DeviceType
from .core.store import AsyncCommandStore, CommandStore, StoreError
from .engine import CommandEngine, DiscoveryListener, EngineSettings
from .runtime import IoteeConfigEntry, IoteeRuntime
from .services import async_setup_services
from .ui import async_setup_ui

_LOGGER = logging.getLogger(__name__)

PLATFORMS: list[Platform] = [Platform.BUTTON, Platform.LOCK, Platform.SWITCH]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
ISSUE_MQTT_UNAVAILABLE = "mqtt_unavailable"
ISSUE_STORE_CORRUPT = "store_corrupt"


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's services and REST API."""
    async_setup_services(hass)
    await async_register_api(hass)
    await async_setup_ui(hass)
    return True


def device_config_from_subentry(subentry: ConfigSubentry) -> DeviceConfig:
    """Build a DeviceConfig from a device subentry's data."""
    data = subentry.data
    return DeviceConfig(
        hardware_id=data[CONF_HARDWARE_ID],
        name=subentry.title,
        device_type=DEVICE_TYPES[data[CONF_DEVICE_TYPE]],
        relays=int(data.get(CONF_RELAYS, 0)),
        mqtt_id=data.get(CONF_MQTT_TOPIC, ""),
        relay_locks=frozenset(int(relay) for relay in data.get(CONF_RELAY_LOCKS, [])),
    )


async def async_setup_entry(hass: HomeAssistant, entry: IoteeConfigEntry) -> bool:
    """Open the store, start the engine for the configured devices and set up platforms."""
    if not await mqtt.async_wait_for_mqtt_client(hass):
        ir.async_create_issue(
            hass,
            DOMAIN,
            ISSUE_MQTT_UNAVAILABLE,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_MQTT_UNAVAILABLE,
        )
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="mqtt_unavailable")
    ir.async_delete_issue(hass, DOMAIN, ISSUE_MQTT_UNAVAILABLE)

    store = AsyncCommandStore(CommandStore(hass.config.path(STORE_FILENAME)))
    try:
        moved = await store.open()
    except StoreError as err:
        await store.close()
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="store_unavailable",
            translation_placeholders={"error": str(err)},
        ) from err
    if moved is not None:
        # The store logged it; the user sees where the damaged file went (until HA restarts).
        ir.async_create_issue(
            hass,
            DOMAIN,
            ISSUE_STORE_CORRUPT,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE_STORE_CORRUPT,
            translation_placeholders={
                "path": str(moved.path),
                "moved_to": str(moved.moved_to),
                "error": moved.reason,
            },
        )

    settings = EngineSettings(
        command_timeout=float(entry.options.get(CONF_COMMAND_TIMEOUT, DEFAULT_COMMAND_TIMEOUT))
    )
    engine = CommandEngine(hass, store, settings)
    devices: dict[str, DeviceConfig] = {}
    device_registry = dr.async_get(hass)
    configured = _subentry_snapshot(entry)
    for subentry in entry.subentries.values():
        if subentry.subentry_type != SUBENTRY_DEVICE:
            continue
        config = device_config_from_subentry(subentry)
        engine.add_device(config)
        device = device_registry.async_get_or_create(
            config_entry_id=entry.entry_id,
            config_subentry_id=subentry.subentry_id,
            identifiers={(DOMAIN, config.hardware_id)},
            name=config.name,
            manufacturer="IoTee",
            model=config.device_type.name,
        )
        engine.set_device_id(config.hardware_id, device.id)
        devices[subentry.subentry_id] = engine.devices[config.hardware_id]

    try:
        await engine.async_start()
    except Exception:
        await engine.async_stop()
        await store.close()
        raise
    entry.runtime_data = IoteeRuntime(engine=engine, store=store, devices=devices)
    async_setup_entry_api(hass, entry)
    entry.async_on_unload(engine.add_discovery_listener(_discovery_starter(hass)))

    retention_days = float(entry.options.get(CONF_RETENTION_DAYS, DEFAULT_RETENTION_DAYS))

    async def _async_purge(*_: object) -> None:
        try:
            cutoff, deleted = await engine.async_purge(retention_days)
        except StoreError as err:
            # The store fault itself is already reported (repair issue); try again tomorrow.
            _LOGGER.warning("Could not purge old commands: %s", err)
            return
        if deleted:
            _LOGGER.info("Purged %s commands created before %s", deleted, cutoff)

    entry.async_on_unload(async_track_time_interval(hass, _async_purge, timedelta(days=1)))
    entry.async_create_background_task(hass, _async_purge(), "iotee purge at start")
    entry.async_on_unload(entry.add_update_listener(_async_reload))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if _subentry_snapshot(entry) != configured:
        # A device was added or changed while this setup ran (no update listener was
        # registered yet to see it): load again with the current devices.
        hass.config_entries.async_schedule_reload(entry.entry_id)
    return True


def _subentry_snapshot(entry: IoteeConfigEntry) -> dict[str, tuple[str, dict[str, Any]]]:
    """Return what the devices are configured as, to notice changes during setup."""
    return {sid: (sub.title, dict(sub.data)) for sid, sub in entry.subentries.items()}


def _discovery_starter(hass: HomeAssistant) -> DiscoveryListener:
    """Start a discovery flow, once per device, when an unconfigured device says online."""
    seen: set[tuple[str, str]] = set()

    @callback
    def _discovered(device_type: DeviceType, mqtt_id: str) -> None:
        if (device_type.name, mqtt_id) in seen:
            return
        seen.add((device_type.name, mqtt_id))
        discovery_flow.async_create_flow(
            hass,
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data={CONF_DEVICE_TYPE: device_type.name, CONF_HARDWARE_ID: mqtt_id},
        )

    return _discovered


async def _async_reload(hass: HomeAssistant, entry: IoteeConfigEntry) -> None:
    """Reload when options or devices change."""
    hass.config_entries.async_schedule_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: IoteeConfigEntry) -> bool:
    """Unload platforms, stop the engine and close the store."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.engine.async_stop()
        await entry.runtime_data.store.close()
    return unloaded
