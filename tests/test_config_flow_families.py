"""The add-device flow for Shelly, Zigbee2MQTT and ESPHome: their settings and errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_RECONFIGURE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import (
    CONF_DEVICE_TYPE,
    CONF_HARDWARE_ID,
    CONF_RELAY_LOCKS,
    CONF_RELAYS,
    SUBENTRY_DEVICE,
)
from custom_components.iotee.core.device_types import DEVICE_TYPES

from .helpers import device
from .test_config_flow import (  # noqa: F401 (a fixture)
    NO_SETUP,
    NO_UNLOAD,
    _start_subentry,
    hub_entry,
    mqtt_config_entry,
)

STRINGS = Path(__file__).parent.parent / "custom_components" / "iotee" / "strings.json"

MQTT = pytest.mark.usefixtures("mqtt_config_entry")


async def configure(hass: HomeAssistant, result: dict[str, Any], data: dict[str, Any]) -> Any:
    """Submit one step of a device subentry flow."""
    return await hass.config_entries.subentries.async_configure(result["flow_id"], data)


async def start(hass: HomeAssistant, entry: MockConfigEntry, device_type: str, hw: str) -> Any:
    """Start adding a device of ``device_type``; return the step after the first form."""
    result = await _start_subentry(hass, entry)
    return await configure(
        hass, result, {"name": "Dev", CONF_DEVICE_TYPE: device_type, CONF_HARDWARE_ID: hw}
    )


def defaults(result: dict[str, Any]) -> dict[str, Any]:
    """Return the default of every field of a form."""
    return {str(key): key.default() for key in result["data_schema"].schema}


@MQTT
async def test_shelly_asks_for_prefix_src_and_jog_then_relays(hass: HomeAssistant) -> None:
    """Defaults come from the hardware id; a prefix with a wildcard is refused."""
    entry = hub_entry(hass)
    result = await start(hass, entry, "shelly_gen2", "shellyplus2pm-a1")
    assert result["step_id"] == "settings"
    # The type as the type picker names it, not its key.
    assert result["description_placeholders"] == {
        "device_type": "Shelly Gen2+ relay (Plus, Pro, Gen3, Gen4) over MQTT RPC"
    }
    assert defaults(result) == {
        "topic_prefix": "shellyplus2pm-a1",
        "src": "iotee-shellyplus2pm-a1",
        "jog_seconds": 1.0,
    }
    for bad in ("shellies/+", "a/#", "/lead", "trail/", "a//b", "$SYS/x", "a\tb"):
        result = await configure(
            hass, result, {"topic_prefix": bad, "src": "iotee", "jog_seconds": 1}
        )
        assert result["errors"] == {"topic_prefix": "invalid_topic"}, bad
    result = await configure(
        hass, result, {"topic_prefix": "home/shelly-a1", "src": "iotee/#", "jog_seconds": 1}
    )
    assert result["errors"] == {"src": "invalid_topic"}
    result = await configure(
        hass, result, {"topic_prefix": "home/shelly-a1", "src": "iotee-hub", "jog_seconds": 1.5}
    )
    assert result["step_id"] == "relays"
    assert "relay_keys" not in defaults(result)
    result = await configure(hass, result, {CONF_RELAYS: 2})
    assert result["step_id"] == "relay_locks"
    result = await configure(hass, result, {CONF_RELAY_LOCKS: []})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (subentry,) = entry.subentries.values()
    assert dict(subentry.data) == {
        CONF_HARDWARE_ID: "shellyplus2pm-a1",
        CONF_DEVICE_TYPE: "shelly_gen2",
        "topic_prefix": "home/shelly-a1",
        "src": "iotee-hub",
        "jog_seconds": "1.5",
        CONF_RELAYS: 2,
        CONF_RELAY_LOCKS: [],
    }


@MQTT
async def test_zigbee2mqtt_lock_base_topic_and_friendly_name(hass: HomeAssistant) -> None:
    """A lock needs no relays; the friendly name may span levels but holds no wildcard."""
    entry = hub_entry(hass)
    result = await start(hass, entry, "zigbee2mqtt_lock", "0x00158d0001a2b3c4")
    assert defaults(result) == {
        "base_topic": "zigbee2mqtt",
        "friendly_name": "0x00158d0001a2b3c4",
    }
    result = await configure(hass, result, {"base_topic": "zigbee2mqtt", "friendly_name": "hall/+"})
    assert result["errors"] == {"friendly_name": "invalid_topic"}
    result = await configure(
        hass, result, {"base_topic": "z2m", "friendly_name": "hall/front door"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (subentry,) = entry.subentries.values()
    assert dict(subentry.data) == {
        CONF_HARDWARE_ID: "0x00158d0001a2b3c4",
        CONF_DEVICE_TYPE: "zigbee2mqtt_lock",
        "base_topic": "z2m",
        "friendly_name": "hall/front door",
    }


@MQTT
async def test_zigbee2mqtt_switch_relay_names(hass: HomeAssistant) -> None:
    """Relay names are optional, one per relay, distinct; empty keeps the defaults."""
    entry = hub_entry(hass)
    result = await start(hass, entry, "zigbee2mqtt_switch", "gate")
    result = await configure(hass, result, {"base_topic": "zigbee2mqtt", "friendly_name": "gate"})
    assert result["step_id"] == "relays"
    for bad in ("state_left", "state_left, state_left", "a, b c", "a,,b"):
        result = await configure(hass, result, {CONF_RELAYS: 2, "relay_keys": bad})
        assert result["errors"] == {"relay_keys": "invalid_relay_keys"}, bad
    result = await configure(
        hass, result, {CONF_RELAYS: 2, "relay_keys": "state_left, state_right"}
    )
    result = await configure(hass, result, {CONF_RELAY_LOCKS: ["2"]})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (subentry,) = entry.subentries.values()
    assert subentry.data["relay_keys"] == ["state_left", "state_right"]
    assert subentry.data[CONF_RELAY_LOCKS] == [2]


@MQTT
async def test_esphome_lock_object_id(hass: HomeAssistant) -> None:
    entry = hub_entry(hass)
    result = await start(hass, entry, "esphome_lock", "garage")
    assert defaults(result) == {"topic_prefix": "garage", "object_id": "lock"}
    result = await configure(hass, result, {"topic_prefix": "garage", "object_id": "front door"})
    assert result["errors"] == {"object_id": "invalid_object_id"}
    result = await configure(hass, result, {"topic_prefix": "garage", "object_id": "front_door"})
    assert result["type"] is FlowResultType.CREATE_ENTRY


@MQTT
async def test_esphome_switch_defaults_to_relay_n(hass: HomeAssistant) -> None:
    entry = hub_entry(hass)
    result = await start(hass, entry, "esphome_switch", "board")
    result = await configure(hass, result, {"topic_prefix": "board"})
    result = await configure(hass, result, {CONF_RELAYS: 2, "relay_keys": ""})
    result = await configure(hass, result, {CONF_RELAY_LOCKS: []})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (subentry,) = entry.subentries.values()
    assert subentry.data["relay_keys"] == []


@MQTT
async def test_reconfigure_shows_the_current_settings(hass: HomeAssistant) -> None:
    """Reconfiguring a Shelly goes through its settings (as stored) and its relays."""
    stored = device("sh1", "shelly_gen2", "Pump", relays=1)
    stored["data"] |= {"topic_prefix": "pumps/sh1", "src": "iotee-x", "jog_seconds": "3"}
    entry = hub_entry(hass, stored)
    (subentry_id,) = entry.subentries
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    result = await configure(hass, result, {"name": "Pump 2"})
    assert result["step_id"] == "settings"
    assert defaults(result) == {"topic_prefix": "pumps/sh1", "src": "iotee-x", "jog_seconds": 3.0}
    result = await configure(
        hass, result, {"topic_prefix": "pumps/sh1", "src": "iotee-y", "jog_seconds": 3}
    )
    assert result["step_id"] == "relays"
    with patch(NO_SETUP, return_value=True), patch(NO_UNLOAD, return_value=True):
        result = await configure(hass, result, {CONF_RELAYS: 2})
        result = await configure(hass, result, {CONF_RELAY_LOCKS: []})
        await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    subentry = entry.subentries[subentry_id]
    assert subentry.title == "Pump 2"
    assert subentry.data["src"] == "iotee-y"
    assert subentry.data[CONF_RELAYS] == 2


@MQTT
async def test_reconfigure_lock_family_updates_settings(hass: HomeAssistant) -> None:
    stored = device("dl", "esphome_lock", "Door")
    stored["data"] |= {"topic_prefix": "door", "object_id": "lock"}
    entry = hub_entry(hass, stored)
    (subentry_id,) = entry.subentries
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    result = await configure(hass, result, {"name": "Door"})
    with patch(NO_SETUP, return_value=True), patch(NO_UNLOAD, return_value=True):
        result = await configure(hass, result, {"topic_prefix": "door2", "object_id": "bolt"})
        await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[subentry_id].data["object_id"] == "bolt"


def test_every_type_and_setting_is_labelled() -> None:
    """Each device type has a name in the type picker and each setting a label."""
    strings = json.loads(STRINGS.read_text())
    options = strings["selector"]["device_type"]["options"]
    labels = strings["config_subentries"]["device"]["step"]["settings"]["data"]
    for name, dtype in DEVICE_TYPES.items():
        assert options.get(name), name
        for setting in dtype.settings:
            assert labels.get(setting), setting
