"""IoTee: tracked, device-confirmed commands for MQTT relay and lock controllers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import logging
from typing import Any

from homeassistant.components import mqtt
from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import (
    config_validation as cv,
    discovery_flow,
    issue_registry as ir,
)
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.typing import ConfigType

from .api import async_register_api, async_setup_entry_api
from .const import (
    COMMAND_QOS_AUTO,
    CONF_COMMAND_QOS,
    CONF_COMMAND_TIMEOUT,
    CONF_DEVICE_TYPE,
    CONF_HARDWARE_ID,
    CONF_RETENTION_DAYS,
    DEFAULT_COMMAND_QOS,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_RETENTION_DAYS,
    DOMAIN,
    STORE_FILENAME,
)
from .core.device_types import DeviceType
from .core.store import AsyncCommandStore, CommandStore, StoreError
from .device_sync import SYNC_BATCH, async_device_configs, async_sync_devices
from .engine import CommandEngine, DiscoveryListener, EngineSettings
from .entity_limit import async_check_entity_limit
from .keeper import (
    async_detach_engine,
    async_engine_stopped,
    async_stop_engine,
    keep_engine,
    kept_engine,
)
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

    settings = _apply_options(EngineSettings(), entry)
    await async_engine_stopped(hass)
    kept = kept_engine(hass)
    if kept is None:
        engine, store = await _async_start_engine(hass, entry, settings)
        keep_engine(hass, engine, store)
    else:
        # A reload: the engine went on tracking the open commands; take it over as it is.
        engine, store = kept.engine, kept.store
        _apply_options(engine.settings, entry)
    entry.runtime_data = IoteeRuntime(engine=engine, store=store)
    configured = _subentry_snapshot(entry)
    await async_sync_devices(hass, entry)
    async_setup_entry_api(hass, entry)
    entry.async_on_unload(engine.add_discovery_listener(_discovery_starter(hass)))

    async def _async_purge(*_: object) -> None:
        retention_days = float(entry.options.get(CONF_RETENTION_DAYS, DEFAULT_RETENTION_DAYS))
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
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    async_check_entity_limit(hass, entry)
    if _subentry_snapshot(entry) != configured:
        # A device was added or changed while this setup ran (no update listener was
        # registered yet to see it): apply it now.
        await async_sync_devices(hass, entry)
    return True


async def _async_start_engine(
    hass: HomeAssistant, entry: IoteeConfigEntry, settings: EngineSettings
) -> tuple[CommandEngine, AsyncCommandStore]:
    """Open the store and start an engine for the configured devices."""
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
    engine = CommandEngine(hass, store, settings)
    try:
        # A batch of devices at a time, letting the loop run in between: at the start of a
        # large home, adding all 5,000 at once was the longest stall of the setup.
        configs = await async_device_configs(entry)
        for added, config in enumerate(configs.values(), 1):
            engine.add_device(config)
            if added % SYNC_BATCH == 0:
                await asyncio.sleep(0)
        await engine.async_start()
    except BaseException:
        # Failed or cancelled (HA stopping): the store is not left open.
        await engine.async_stop()
        await store.close()
        raise
    return engine, store


def _apply_options(settings: EngineSettings, entry: IoteeConfigEntry) -> EngineSettings:
    """Give the engine's settings the hub's options: at setup, on a reload, on a change."""
    options = entry.options
    settings.command_timeout = float(options.get(CONF_COMMAND_TIMEOUT, DEFAULT_COMMAND_TIMEOUT))
    qos = options.get(CONF_COMMAND_QOS, DEFAULT_COMMAND_QOS)
    settings.qos = None if qos == COMMAND_QOS_AUTO else int(qos)
    settings.retention_days = float(options.get(CONF_RETENTION_DAYS, DEFAULT_RETENTION_DAYS))
    return settings


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


async def _async_entry_updated(hass: HomeAssistant, entry: IoteeConfigEntry) -> None:
    """Apply changed options and devices in place, without reloading the hub.

    The REST API reads its options at each request and the daily purge its retention when it
    runs; the engine takes the new command timeout, QoS and retention (the longest a command
    stays queued) for new commands. Devices added, removed or reconfigured are applied one by
    one, so other devices and commands in flight are untouched.
    """
    _apply_options(entry.runtime_data.engine.settings, entry)
    await async_sync_devices(hass, entry)


async def async_unload_entry(hass: HomeAssistant, entry: IoteeConfigEntry) -> bool:
    """Unload the platforms; the engine goes on with what is open (see ``keeper``)."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await async_detach_engine(hass)
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: IoteeConfigEntry) -> None:
    """The hub was deleted: nothing is tracked any more (its history file stays)."""
    await async_stop_engine(hass)
