"""Shared fixtures: a real mosquitto broker and HA's real MQTT integration connected to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.keeper import async_stop_engine

from .broker import Mosquitto, PahoPeer

pytest_plugins = ["pytest_homeassistant_custom_component"]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let HA load custom_components/iotee in every test."""


@pytest.fixture
def hass_config_dir(hass_tmp_config_dir: str) -> str:
    """Give every test its own config directory (the command store lives there)."""
    return hass_tmp_config_dir


@pytest.fixture
def mosquitto(socket_enabled: None, tmp_path: Path) -> Generator[Mosquitto]:
    """Start a real mosquitto on a free loopback port; stop it after the test."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    broker = Mosquitto(workdir)
    broker.start()
    yield broker
    broker.stop()


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Wait on the event loop until ``predicate()`` is true."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(interval)


@pytest.fixture
async def mqtt_entry(
    hass: HomeAssistant,
    mock_hass_config: None,
    mosquitto: Mosquitto,
    request: pytest.FixtureRequest,
) -> AsyncGenerator[MockConfigEntry]:
    """Set up HA's real MQTT integration against the real broker and wait until connected.

    No birth message, unless a test parametrizes this fixture (indirectly) with
    ``"default birth"``: then HA's default one, as a fresh install has it.
    """
    options = (
        {} if getattr(request, "param", None) == "default birth" else {mqtt.CONF_BIRTH_MESSAGE: {}}
    )
    entry = MockConfigEntry(
        domain=mqtt.DOMAIN,
        title="MQTT",
        data={mqtt.CONF_BROKER: mosquitto.host, mqtt.CONF_PORT: mosquitto.port},
        options=options,
        version=1,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(lambda: mqtt.is_connected(hass))
    yield entry
    for other in hass.config_entries.async_entries():
        if other.domain != mqtt.DOMAIN and other.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(other.entry_id)
    # Unloading leaves the engine tracking open commands (a reload must not cut them short);
    # stop it as Home Assistant stopping would, before its MQTT subscriptions lose their client.
    await async_stop_engine(hass)
    if entry.state is ConfigEntryState.LOADED:
        await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
def peer(mosquitto: Mosquitto) -> Generator[PahoPeer]:
    """A plain paho client connected to the broker."""
    client = PahoPeer(mosquitto, client_id="test-peer").connect()
    yield client
    client.close()


async def subscribed(hass: HomeAssistant, topic: str, qos: int = 0) -> None:
    """Wait until HA's subscription to ``topic`` is acknowledged by the broker."""
    done = asyncio.Event()
    cancel = mqtt.async_on_subscribe_done(hass, topic, qos, done.set)
    try:
        async with asyncio.timeout(10):
            await done.wait()
    finally:
        cancel()
