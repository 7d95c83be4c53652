"""Zigbee2MQTT's bridge/devices: its locks and switches offered in the add-device flow, once."""

from __future__ import annotations

import json
from typing import Any

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import SUBENTRY_DEVICE
from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.device_types import ZIGBEE2MQTT_LOCK
from custom_components.iotee.core.zigbee2mqtt import (
    BridgeDevice,
    bridge_topics,
    parse_bridge_devices,
)
from custom_components.iotee.runtime import loaded_engine
from simulator import Kind, SimulatedDevice
from simulator.families import Zigbee2MqttDevice, bridge_devices

from .broker import PahoPeer
from .conftest import wait_for
from .helpers import engine_subscribed, setup_hub
from .test_families_broker import family_device


def listed() -> str:
    """Return a bridge/devices list: locks door and hall, a 2-gang switch gate, and the rest."""
    sims: list[Any] = [
        SimulatedDevice(Kind.ZIGBEE2MQTT_LOCK, "door"),
        SimulatedDevice(Kind.ZIGBEE2MQTT_LOCK, "hall"),
        SimulatedDevice(Kind.ZIGBEE2MQTT_SWITCH, "gate", relays=2),
    ]
    assert all(isinstance(sim, Zigbee2MqttDevice) for sim in sims)
    entries = bridge_devices(sims)
    sensor = {"type": "numeric", "name": "temperature", "property": "temperature"}
    entries += [
        {"friendly_name": "bath/sensor", "type": "EndDevice", "definition": {"exposes": [sensor]}},
        {
            "friendly_name": "old",
            "type": "Router",
            "disabled": True,
            "definition": entries[1]["definition"],
        },
        {"friendly_name": "odd", "type": "Router", "supported": False, "definition": None},
        {"friendly_name": "bad/+", "type": "Router", "definition": entries[1]["definition"]},
        "not a device",
    ]
    return json.dumps(entries)


def test_parse_bridge_devices() -> None:
    """Locks and switches (with their state properties); nothing else."""
    devices = parse_bridge_devices(listed())
    assert [(d.device_type, d.friendly_name, d.relay_keys) for d in devices] == [
        ("zigbee2mqtt_lock", "door", ()),
        ("zigbee2mqtt_lock", "hall", ()),
        ("zigbee2mqtt_switch", "gate", ("state_l1", "state_l2")),
    ]
    assert devices[2].label == "gate (SIM-2G, 2 relays)"
    assert devices[0].ieee_address.startswith("0x")
    for garbage in ("", "{}", "[1, 2]", '{"devices": []}'):
        assert parse_bridge_devices(garbage) == ()


def test_bridge_topics_default_and_configured_bases() -> None:
    devices = [
        DeviceConfig("a", "A", ZIGBEE2MQTT_LOCK, settings={"base_topic": "z2m-2"}),
        DeviceConfig("b", "B", ZIGBEE2MQTT_LOCK),
    ]
    assert bridge_topics(devices) == {
        "z2m-2/bridge/devices": "z2m-2",
        "zigbee2mqtt/bridge/devices": "zigbee2mqtt",
    }


async def step(hass: HomeAssistant, result: dict[str, Any], data: dict[str, Any]) -> Any:
    return await hass.config_entries.subentries.async_configure(result["flow_id"], data)


async def start(hass: HomeAssistant, entry: MockConfigEntry, device_type: str, hw: str) -> Any:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )
    return await step(hass, result, {"name": hw, "device_type": device_type, "hardware_id": hw})


def options(result: dict[str, Any]) -> list[str]:
    (selector,) = result["data_schema"].schema.values()
    return [option["label"] for option in selector.config["options"]]


async def loaded_with_bridge_list(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Wait until the (re)loaded hub has heard Zigbee2MQTT's retained list."""
    await hass.async_block_till_done()
    await wait_for(
        lambda: (e := loaded_engine(hass)) is not None and "zigbee2mqtt" in e.zigbee2mqtt
    )
    await engine_subscribed(hass, entry)


async def test_pick_zigbee2mqtt_devices_in_the_add_device_flow(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """Only locks for a lock, only switches for a switch, never a configured one; the pick fills
    in the friendly name and the relays."""
    await hass.async_add_executor_job(peer.publish, "zigbee2mqtt/bridge/devices", listed(), True)
    entry = await setup_hub(hass, (family_device("door", "zigbee2mqtt_lock", "Door"),))
    await loaded_with_bridge_list(hass, entry)

    result = await start(hass, entry, "zigbee2mqtt_lock", "hall_lock")
    assert result["step_id"] == "zigbee2mqtt_pick"
    assert options(result) == ["hall (SIM-LOCK)"]  # door is configured already
    result = await step(hass, result, {"bridge_device": "0"})
    assert result["step_id"] == "settings"
    defaults = {str(key): key.default() for key in result["data_schema"].schema}
    assert defaults == {"base_topic": "zigbee2mqtt", "friendly_name": "hall"}
    result = await step(hass, result, defaults)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await loaded_with_bridge_list(hass, entry)

    result = await start(hass, entry, "zigbee2mqtt_switch", "gate")
    assert options(result) == ["gate (SIM-2G, 2 relays)"]
    result = await step(hass, result, {"bridge_device": "0"})
    result = await step(hass, result, {"base_topic": "zigbee2mqtt", "friendly_name": "gate"})
    assert result["step_id"] == "relays"
    defaults = {str(key): key.default() for key in result["data_schema"].schema}
    assert (defaults["relays"], defaults["relay_keys"]) == (2, "state_l1, state_l2")
    result = await step(hass, result, {"relays": 2, "relay_keys": defaults["relay_keys"]})
    result = await step(hass, result, {"relay_locks": []})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await loaded_with_bridge_list(hass, entry)

    # Every lock the bridge lists is configured now: nothing to pick, straight to the settings.
    result = await start(hass, entry, "zigbee2mqtt_lock", "other")
    assert result["step_id"] == "settings"


async def test_picking_none_means_entering_it_by_hand(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    await hass.async_add_executor_job(peer.publish, "zigbee2mqtt/bridge/devices", listed(), True)
    entry = await setup_hub(hass, ())
    await loaded_with_bridge_list(hass, entry)
    result = await start(hass, entry, "zigbee2mqtt_lock", "mine")
    assert options(result) == ["door (SIM-LOCK)", "hall (SIM-LOCK)"]
    result = await step(hass, result, {})
    defaults = {str(key): key.default() for key in result["data_schema"].schema}
    assert defaults == {"base_topic": "zigbee2mqtt", "friendly_name": "mine"}
    assert isinstance(loaded_engine(hass).zigbee2mqtt["zigbee2mqtt"][0], BridgeDevice)
