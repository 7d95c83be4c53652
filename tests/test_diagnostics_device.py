"""Diagnostics from a device's page: that device only, with its own commands."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.iotee.const import DOMAIN

from .helpers import LOCK_ID, WLTE_ID, engine_of, setup_hub


async def test_device_diagnostics_cover_that_device_only(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, hass_client: ClientSessionGenerator
) -> None:
    entry = await setup_hub(hass)
    engine = engine_of(entry)
    mine = await engine.async_submit(
        WLTE_ID, "ON", 2, params={"pin": "s3cr3t-pin"}, source="test", caller="user-1"
    )
    other = await engine.async_submit(LOCK_ID, "lock", source="test")
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, WLTE_ID), entry.entry_id)
    assert device is not None

    diagnostics = await get_diagnostics_for_device(hass, hass_client, entry, device)

    assert diagnostics["device"]["hardware_id"] == WLTE_ID
    assert diagnostics["device"]["relays"] == 4
    assert [c["command_id"] for c in diagnostics["recent_commands"]] == [mine.command_id]
    assert [c["command_id"] for c in diagnostics["open_commands"]] == [mine.command_id]
    assert other.command_id not in str(diagnostics)
    assert "s3cr3t-pin" not in str(diagnostics)
