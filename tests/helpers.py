"""Helpers to set up the IoTee hub with devices in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.config_flow import DEFAULT_OPTIONS
from custom_components.iotee.const import (
    CONF_COMMAND_TIMEOUT,
    CONF_DEVICE_TYPE,
    CONF_HARDWARE_ID,
    CONF_MQTT_TOPIC,
    CONF_RELAY_LOCKS,
    CONF_RELAYS,
    CONF_SYNC_WAIT,
    DOMAIN,
    SUBENTRY_DEVICE,
)
from custom_components.iotee.engine import CommandEngine
from custom_components.iotee.engine.subscriptions import SUBSCRIBE_QOS
from simulator import Behaviour, SimulatedDevice
from simulator.broker import Mosquitto

LOCK_ID = "ABC123"
WLTE_ID = "abc123456789"
TASMOTA_ID = "tasmota_1"


def device(
    hardware_id: str,
    device_type: str,
    name: str | None = None,
    relays: int = 0,
    relay_locks: list[int] | None = None,
    mqtt_topic: str | None = None,
) -> ConfigSubentryData:
    """Return the subentry data of one device."""
    data: dict[str, Any] = {CONF_HARDWARE_ID: hardware_id, CONF_DEVICE_TYPE: device_type}
    if relays:
        data[CONF_RELAYS] = relays
        data[CONF_RELAY_LOCKS] = relay_locks or []
    if mqtt_topic:
        data[CONF_MQTT_TOPIC] = mqtt_topic
    return ConfigSubentryData(
        data=data,
        subentry_type=SUBENTRY_DEVICE,
        title=name or hardware_id,
        unique_id=hardware_id,
    )


DEFAULT_DEVICES = (
    device(LOCK_ID, "iotee_device", "Front door"),
    device(WLTE_ID, "wlte_relay", "Gate controller", relays=4, relay_locks=[4]),
    device(TASMOTA_ID, "tasmota", "Garden pump", relays=2, mqtt_topic="garden"),
)


async def setup_hub(
    hass: HomeAssistant,
    devices: tuple[ConfigSubentryData, ...] = DEFAULT_DEVICES,
    **options: Any,
) -> MockConfigEntry:
    """Add and set up the IoTee hub with ``devices``; options override the defaults."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="IoTee",
        unique_id=DOMAIN,
        data={},
        options=DEFAULT_OPTIONS | options,
        subentries_data=devices,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def engine_of(entry: MockConfigEntry) -> CommandEngine:
    """Return the hub's command engine."""
    engine: CommandEngine = entry.runtime_data.engine
    return engine


async def settle(hass: HomeAssistant, seconds: float = 0.05) -> None:
    """Let messages in flight arrive."""
    await asyncio.sleep(seconds)
    await hass.async_block_till_done()


async def engine_subscribed(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Wait until the broker acknowledged every subscription of the engine, and the engine's
    state requests (Zigbee2MQTT, Tasmota: sent once subscribed) went out."""
    from .conftest import subscribed

    for topic_filter in engine_of(entry).subscription_filters:
        await subscribed(hass, topic_filter, qos=SUBSCRIBE_QOS)
    await hass.async_block_till_done(wait_background_tasks=True)


async def setup_api_hub(hass: HomeAssistant, **options: Any) -> MockConfigEntry:
    """Set up the hub for REST API tests: 2 s command timeout and no synchronous wait unless
    ``options`` say otherwise, its subscriptions acknowledged, the REST API registered."""
    entry = await setup_hub(hass, **({CONF_COMMAND_TIMEOUT: 2.0, CONF_SYNC_WAIT: 0} | options))
    await engine_subscribed(hass, entry)
    assert await async_setup_component(hass, DOMAIN, {})
    return entry


async def stop_hub(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Do to the hub what Home Assistant stopping does: unload it and stop its engine.

    Unloading alone (a reload) leaves the engine tracking the open commands; stopping leaves
    them open in the store, for the next start to recover.
    """
    from custom_components.iotee.keeper import async_stop_engine

    assert await hass.config_entries.async_unload(entry.entry_id)
    await async_stop_engine(hass)


def default_simulators(
    mosquitto: Mosquitto,
    *,
    lock: Behaviour | None = None,
    wlte: Behaviour | None = None,
    tasmota: Behaviour | None = None,
    wlte_relays: int = 4,
    with_tasmota: bool = True,
) -> dict[str, SimulatedDevice]:
    """Simulators of ``DEFAULT_DEVICES`` on ``mosquitto`` (not started; see ``running``): the
    lock, the WLTE controller with ``wlte_relays`` relays and, unless told not to, the Tasmota."""
    host, port = mosquitto.host, mosquitto.port
    sims = {
        LOCK_ID: SimulatedDevice("iotee_device", LOCK_ID, host, port, behaviour=lock),
        WLTE_ID: SimulatedDevice(
            "wlte_relay", WLTE_ID, host, port, relays=wlte_relays, behaviour=wlte
        ),
    }
    if with_tasmota:
        sims[TASMOTA_ID] = SimulatedDevice(
            "tasmota", "garden", host, port, relays=2, behaviour=tasmota
        )
    return sims


@contextmanager
def running(devices: dict[str, SimulatedDevice]) -> Iterator[dict[str, SimulatedDevice]]:
    """Start the simulated ``devices`` (online); stop them when the block ends."""
    for sim in devices.values():
        sim.start()
    try:
        yield devices
    finally:
        for sim in devices.values():
            sim.stop()
