"""Entities through HA services, with the real broker and simulated devices."""

from __future__ import annotations

import asyncio
from collections.abc import Generator

from homeassistant.components import mqtt
from homeassistant.const import ATTR_ENTITY_ID, EVENT_STATE_CHANGED, STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT, DOMAIN
from custom_components.iotee.core.model import CommandStatus
from simulator import Behaviour, Mode, SimulatedDevice

from .broker import Mosquitto, PahoPeer
from .conftest import wait_for
from .helpers import (
    LOCK_ID,
    TASMOTA_ID,
    WLTE_ID,
    default_simulators,
    engine_subscribed,
    running,
    settle,
    setup_hub,
)

FRONT_DOOR = "lock.front_door"
GATE_RELAY_1 = "switch.gate_controller_relay_1"
GATE_RELAY_2 = "switch.gate_controller_relay_2"
GATE_LOCK_4 = "lock.gate_controller_relay_4_lock"
GATE_JOG_2 = "button.gate_controller_jog_relay_2"
FRONT_DOOR_RESTART = "button.front_door_restart"


@pytest.fixture
def devices(mosquitto: Mosquitto) -> Generator[dict[str, SimulatedDevice]]:
    """The three simulated devices, online."""
    fast = Behaviour(pulse=0.1, reboot_delay=0.1)
    with running(default_simulators(mosquitto, lock=fast, wlte=fast, tasmota=fast)) as sims:
        yield sims


@pytest.fixture
async def hub(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, devices: dict[str, SimulatedDevice]
) -> MockConfigEntry:
    """The hub set up after the devices announced themselves."""
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 1.5})
    await engine_subscribed(hass, entry)
    await wait_for(lambda: hass.states.get(FRONT_DOOR).state == "locked")
    return entry


async def call(hass: HomeAssistant, domain: str, service: str, entity_id: str) -> None:
    """Call an entity service and wait for it."""
    await hass.services.async_call(domain, service, {ATTR_ENTITY_ID: entity_id}, blocking=True)


async def test_entities_and_devices_are_registered(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """One registry device per configured device; entities as far as each type supports."""
    device_registry = dr.async_get(hass)
    entity_registry = er.async_get(hass)
    for hardware_id in (LOCK_ID, WLTE_ID, TASMOTA_ID):
        device = device_registry.async_get_device_by_identifier((DOMAIN, hardware_id), hub.entry_id)
        assert device is not None
    entities = {
        entry.entity_id
        for entry in er.async_entries_for_config_entry(entity_registry, hub.entry_id)
    }
    assert entities == {
        FRONT_DOOR,
        FRONT_DOOR_RESTART,
        "switch.gate_controller_relay_1",
        "switch.gate_controller_relay_2",
        "switch.gate_controller_relay_3",
        GATE_LOCK_4,
        "button.gate_controller_jog_relay_1",
        GATE_JOG_2,
        "button.gate_controller_jog_relay_3",
        "button.gate_controller_jog_relay_4",
        "switch.garden_pump_relay_1",
        "switch.garden_pump_relay_2",
        "button.garden_pump_jog_relay_1",
        "button.garden_pump_jog_relay_2",
        "button.garden_pump_restart",
    }
    restart = entity_registry.async_get(FRONT_DOOR_RESTART)
    assert restart.entity_category == "config"
    assert entity_registry.async_get(FRONT_DOOR).unique_id == f"{LOCK_ID}_lock"


async def test_lock_unlock_with_confirmed_state_and_attributes(
    hass: HomeAssistant, hub: MockConfigEntry, devices: dict[str, SimulatedDevice]
) -> None:
    """Unlocking goes through the device; state and attributes follow the tracked command."""
    await call(hass, "lock", "unlock", FRONT_DOOR)
    state = hass.states.get(FRONT_DOOR)
    assert state.state == "unlocked"
    assert state.attributes["last_command"] == "unlock"
    assert state.attributes["last_command_status"] == "completed"
    assert "last_command_error" not in state.attributes  # no "Last command error: Unknown"
    assert state.attributes["last_command_id"]
    assert devices[LOCK_ID].state == {"lock": False}

    await call(hass, "lock", "lock", FRONT_DOOR)
    assert hass.states.get(FRONT_DOOR).state == "locked"


async def test_lock_shows_unlocking_while_in_flight(
    hass: HomeAssistant, hub: MockConfigEntry, devices: dict[str, SimulatedDevice]
) -> None:
    """While the device has not confirmed, the lock is 'unlocking'."""
    devices[LOCK_ID].set_behaviour(delay=0.4)
    task = hass.async_create_task(call(hass, "lock", "unlock", FRONT_DOOR))
    await wait_for(lambda: hass.states.get(FRONT_DOOR).state == "unlocking")
    await task
    assert hass.states.get(FRONT_DOOR).state == "unlocked"


async def test_failed_lock_raises_and_returns_to_confirmed_state(
    hass: HomeAssistant, hub: MockConfigEntry, devices: dict[str, SimulatedDevice]
) -> None:
    """A device that never answers: the caller gets an error, the lock stays as confirmed."""
    devices[LOCK_ID].set_behaviour(mode=Mode.SILENT)
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "lock", "unlock", FRONT_DOOR)
    assert err.value.translation_key == "command_timeout"
    state = hass.states.get(FRONT_DOOR)
    assert state.state == "locked"
    assert state.attributes["last_command_status"] == "timeout"


async def test_rejected_relay_raises(
    hass: HomeAssistant, hub: MockConfigEntry, devices: dict[str, SimulatedDevice]
) -> None:
    """A WLTE REJECTED answer fails the switch service with the device's reason."""
    devices[WLTE_ID].set_behaviour(mode=Mode.REJECT)
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "switch", "turn_on", GATE_RELAY_1)
    assert err.value.translation_key == "command_failed"
    assert err.value.translation_placeholders["name"] == "Gate controller relay 1"
    state = hass.states.get(GATE_RELAY_1)
    assert state.state == "off"
    assert state.attributes["last_command_status"] == "failed"
    assert state.attributes["last_command_error"]


async def test_switch_and_relay_lock_follow_relay_state(
    hass: HomeAssistant, hub: MockConfigEntry, devices: dict[str, SimulatedDevice]
) -> None:
    """Switch ON/OFF and a relay lock (unlock = relay ON) track the device's relay state."""
    await call(hass, "switch", "turn_on", GATE_RELAY_1)
    assert hass.states.get(GATE_RELAY_1).state == "on"
    assert devices[WLTE_ID].state["relay1"] is True
    await call(hass, "switch", "turn_off", GATE_RELAY_1)
    assert hass.states.get(GATE_RELAY_1).state == "off"

    await call(hass, "lock", "unlock", GATE_LOCK_4)
    assert hass.states.get(GATE_LOCK_4).state == "unlocked"
    assert devices[WLTE_ID].state["relay4"] is True
    await call(hass, "lock", "lock", GATE_LOCK_4)
    assert hass.states.get(GATE_LOCK_4).state == "locked"


async def test_jog_and_reboot_buttons(
    hass: HomeAssistant, hub: MockConfigEntry, devices: dict[str, SimulatedDevice]
) -> None:
    """JOG completes after the relay went ON and back OFF; reboot after the device returns."""
    await call(hass, "button", "press", GATE_JOG_2)
    state = hass.states.get(GATE_JOG_2)
    assert state.attributes["last_command"] == "JOG"
    assert state.attributes["last_command_status"] == "completed"
    assert devices[WLTE_ID].state["relay2"] is False

    await call(hass, "button", "press", FRONT_DOOR_RESTART)
    assert hass.states.get(FRONT_DOOR_RESTART).attributes["last_command_status"] == "completed"


async def test_unavailable_while_device_offline_or_mqtt_down(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    devices: dict[str, SimulatedDevice],
    mosquitto: Mosquitto,
) -> None:
    """Offline availability or a lost MQTT connection makes entities unavailable."""
    await hass.async_add_executor_job(devices[LOCK_ID].stop, False)
    await wait_for(lambda: hass.states.get(FRONT_DOOR).state == STATE_UNAVAILABLE)
    assert hass.states.get(GATE_RELAY_1).state != STATE_UNAVAILABLE
    await hass.async_add_executor_job(devices[LOCK_ID].start)
    await wait_for(lambda: hass.states.get(FRONT_DOOR).state == "locked")

    await hass.async_add_executor_job(mosquitto.stop)
    await wait_for(lambda: not mqtt.is_connected(hass))
    await wait_for(lambda: hass.states.get(GATE_RELAY_1).state == STATE_UNAVAILABLE)
    await hass.async_add_executor_job(mosquitto.start)
    await wait_for(lambda: mqtt.is_connected(hass), timeout=30)
    await wait_for(lambda: hass.states.get(GATE_RELAY_1).state != STATE_UNAVAILABLE)
    await asyncio.sleep(0)


def record_states(hass: HomeAssistant, prefix: str) -> list[tuple[str, str, str | None]]:
    """Collect (entity, state, last_command_status) of every state write of ``prefix``'s
    entities from now on."""
    seen: list[tuple[str, str, str | None]] = []

    @callback
    def on_state(event: Event[EventStateChangedData]) -> None:
        entity_id = event.data["entity_id"]
        new = event.data["new_state"]
        if new is not None and entity_id.split(".", 1)[1].startswith(prefix):
            seen.append((entity_id, new.state, new.attributes.get("last_command_status")))

    hass.bus.async_listen(EVENT_STATE_CHANGED, on_state)
    return seen


async def test_a_relay_command_writes_only_that_relays_entities(
    hass: HomeAssistant, hub: MockConfigEntry, devices: dict[str, SimulatedDevice]
) -> None:
    """Turning relay 1 on: its switch shows every status of the command and the relay's state
    when the device reports it (before its SUCCESS); no other entity of the 4-relay controller
    is written (not relay 1's JOG button either)."""
    seen = record_states(hass, "gate_controller")
    await call(hass, "switch", "turn_on", GATE_RELAY_1)
    await hass.async_block_till_done()
    assert seen == [
        (GATE_RELAY_1, "off", "pending"),
        (GATE_RELAY_1, "off", "published"),
        (GATE_RELAY_1, "off", "acknowledged"),
        (GATE_RELAY_1, "on", "acknowledged"),
        (GATE_RELAY_1, "on", "completed"),
    ]


async def test_jog_button_writes_for_its_own_commands(
    hass: HomeAssistant, hub: MockConfigEntry, devices: dict[str, SimulatedDevice]
) -> None:
    """A JOG of relay 2: the button follows its command; the relay's switch shows the pulse
    (on, then off) and the JOG's status. An ON of relay 2 afterwards leaves the button alone."""
    seen = record_states(hass, "gate_controller")
    await call(hass, "button", "press", GATE_JOG_2)
    await hass.async_block_till_done()
    jog = [(state, status) for entity, state, status in seen if entity == GATE_JOG_2]
    # The first write is HA's own (the press time), before the command exists.
    assert [status for _, status in jog] == [
        None,
        "pending",
        "published",
        "acknowledged",
        "completed",
    ]
    switch = [(state, status) for entity, state, status in seen if entity == GATE_RELAY_2]
    assert [status for _, status in switch][-1] == "completed"
    assert ("on", "acknowledged") in switch
    assert switch[-1] == ("off", "completed")
    assert {entity for entity, _, _ in seen} == {GATE_JOG_2, GATE_RELAY_2}

    seen.clear()
    await call(hass, "switch", "turn_on", GATE_RELAY_2)
    await hass.async_block_till_done()
    assert {entity for entity, _, _ in seen} == {GATE_RELAY_2}
    assert seen[-1] == (GATE_RELAY_2, "on", "completed")
    state = hass.states.get(GATE_JOG_2)
    assert (state.attributes["last_command"], state.attributes["last_command_status"]) == (
        "JOG",
        "completed",
    )


async def test_device_reports_write_only_what_changed(
    hass: HomeAssistant, hub: MockConfigEntry, devices: dict[str, SimulatedDevice], peer: PahoPeer
) -> None:
    """A report repeating what the entities show writes nothing; a relay's new state writes
    that relay's switch only; going offline makes each entity unavailable once."""
    seen = record_states(hass, "gate_controller")
    for relay in (1, 2, 3, 4):
        await hass.async_add_executor_job(
            peer.publish, f"wlte/{WLTE_ID}/relay/{relay}/state", "OFF"
        )
    await hass.async_add_executor_job(peer.publish, f"wlte/{WLTE_ID}/status", "online")
    await settle(hass, 0.2)
    assert seen == []

    await hass.async_add_executor_job(peer.publish, f"wlte/{WLTE_ID}/relay/3/state", "ON")
    await wait_for(lambda: bool(seen))
    await settle(hass, 0.2)
    assert seen == [("switch.gate_controller_relay_3", "on", None)]

    seen.clear()
    await hass.async_add_executor_job(peer.publish, f"wlte/{WLTE_ID}/status", "offline")
    await wait_for(lambda: hass.states.get(GATE_RELAY_1).state == STATE_UNAVAILABLE)
    await settle(hass, 0.2)
    assert sorted(entity for entity, _, _ in seen) == sorted(
        entity_id
        for entity_id in hass.states.async_entity_ids()
        if entity_id.split(".", 1)[1].startswith("gate_controller")
    )
    assert {state for _, state, _ in seen} == {STATE_UNAVAILABLE}


async def test_superseded_command_does_not_take_the_entity_back(
    hass: HomeAssistant, hub: MockConfigEntry, devices: dict[str, SimulatedDevice]
) -> None:
    """Two commands to the lock back to back, as a REST caller sends them: the newer one
    supersedes the older. The entity shows the newer command from its first write on; the
    older one's end (failed, superseded) is on its record and event, and never makes the
    entity show the older command again."""
    engine = hub.runtime_data.engine
    seen: list[tuple[str | None, str | None]] = []

    @callback
    def on_state(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        if event.data["entity_id"] == FRONT_DOOR and new is not None:
            attributes = new.attributes
            seen.append((attributes.get("last_command_id"), attributes.get("last_command_status")))

    hass.bus.async_listen(EVENT_STATE_CHANGED, on_state)
    devices[LOCK_ID].set_behaviour(mode=Mode.SILENT)
    first = await engine.async_submit(LOCK_ID, "unlock", source="test", await_publish=False)
    await asyncio.sleep(0)
    second = await engine.async_submit(LOCK_ID, "unlock", source="test", await_publish=False)
    await wait_for(lambda: (second.command_id, "published") in seen)
    await settle(hass, 0.1)
    assert (first.status, first.error_code) == (CommandStatus.FAILED, "superseded")
    # The first one's PUBACK may come in before the second exists, or not.
    before = [status for command_id, status in seen if command_id == first.command_id]
    assert before in (["pending"], ["pending", "published"])
    assert seen == [(first.command_id, status) for status in before] + [
        (second.command_id, "pending"),
        (second.command_id, "published"),
    ]


async def test_tasmota_relays_show_their_state_at_start(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    devices: dict[str, SimulatedDevice],
    peer: PahoPeer,
) -> None:
    """Tasmota retains no relay state: its ``stat`` of relay 2 going on was published before
    the hub subscribed. Once subscribed IoTee asks each relay once (an empty ``POWER<n>``, as
    Tasmota reads it: show the current state), so both switches show the device's state with
    no command sent: unknown, then what the device says, nothing in between. A second sync
    asks no more."""
    await hass.async_add_executor_job(peer.subscribe, "cmnd/garden/#")
    await hass.async_add_executor_job(peer.publish, "cmnd/garden/POWER2", "ON")
    await wait_for(lambda: devices[TASMOTA_ID].state == {"relay1": False, "relay2": True})
    while not peer.messages.empty():
        peer.messages.get()
    seen: dict[str, list[str]] = {
        "switch.garden_pump_relay_1": [],
        "switch.garden_pump_relay_2": [],
    }

    @callback
    def record(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] in seen and (new := event.data["new_state"]) is not None:
            states = seen[event.data["entity_id"]]
            if not states or states[-1] != new.state:
                states.append(new.state)

    hass.bus.async_listen(EVENT_STATE_CHANGED, record)
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 1.5})
    await engine_subscribed(hass, entry)
    await wait_for(lambda: hass.states.get("switch.garden_pump_relay_2").state == "on")
    await wait_for(lambda: hass.states.get("switch.garden_pump_relay_1").state == "off")
    assert seen == {
        "switch.garden_pump_relay_1": ["unknown", "off"],
        "switch.garden_pump_relay_2": ["unknown", "on"],
    }
    await entry.runtime_data.engine.async_subscribe_devices()
    await settle(hass, 0.3)
    asks = []
    while not peer.messages.empty():
        message = peer.messages.get()
        asks.append((message.topic, message.payload))
    assert sorted(asks) == [("cmnd/garden/POWER1", ""), ("cmnd/garden/POWER2", "")]
    assert devices[TASMOTA_ID].state == {"relay1": False, "relay2": True}
