"""What IoTee shows about a command is true in every timing: reloads, late answers, order of
messages. Real broker, HA's real MQTT client, simulated devices (or a paho peer playing one)."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from datetime import timedelta
import json
from typing import Any
from unittest.mock import patch

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import ATTR_ENTITY_ID, EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.api.state import DATA_API
from custom_components.iotee.const import (
    CONF_COMMAND_TIMEOUT,
    CONF_RELAYS,
    CONF_RETENTION_DAYS,
    CONF_SYNC_WAIT,
    DOMAIN,
)
from custom_components.iotee.core.model import CommandStatus
from custom_components.iotee.keeper import DATA_KEPT
from simulator import Behaviour, Mode, SimulatedDevice

from .broker import Mosquitto, PahoPeer
from .conftest import wait_for
from .helpers import (
    DEFAULT_DEVICES,
    LOCK_ID,
    WLTE_ID,
    default_simulators,
    device,
    engine_of,
    engine_subscribed,
    running,
    settle,
    setup_hub,
    stop_hub,
)

FRONT_DOOR = "lock.front_door"
GATE_RELAY_1 = "switch.gate_controller_relay_1"
GATE_RELAY_2 = "switch.gate_controller_relay_2"
GATE_LOCK_4 = "lock.gate_controller_relay_4_lock"
GATE_JOG_2 = "button.gate_controller_jog_relay_2"
PUMP_RELAY_1 = "switch.garden_pump_relay_1"
PEER_ID = "peer00000001"
PEER_LOCK = "lock.side_gate_relay_1_lock"
TIMEOUT = 1.5


@pytest.fixture
def sims(mosquitto: Mosquitto) -> Generator[dict[str, SimulatedDevice]]:
    """The three simulated devices, online."""
    fast = Behaviour(pulse=0.1, reboot_delay=0.1)
    with running(default_simulators(mosquitto, wlte=fast, tasmota=fast)) as devices:
        yield devices


async def start(hass: HomeAssistant, *extra: Any, **options: Any) -> MockConfigEntry:
    """The hub with the default devices (and ``extra``), after they announced themselves."""
    entry = await setup_hub(
        hass, (*DEFAULT_DEVICES, *extra), **({CONF_COMMAND_TIMEOUT: TIMEOUT} | options)
    )
    await engine_subscribed(hass, entry)
    await wait_for(lambda: hass.states.get(FRONT_DOOR).state == "locked")
    await wait_for(lambda: hass.states.get(GATE_RELAY_1).state == "off")
    return entry


@pytest.fixture
async def hub(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> MockConfigEntry:
    """The hub, its devices online and their states in."""
    return await start(hass)


class Recorder:
    """Every state an automation would see of some entities: (state, last command status)."""

    def __init__(self, hass: HomeAssistant, *entity_ids: str) -> None:
        """Start recording ``state_changed`` of ``entity_ids``."""
        self.seen: dict[str, list[tuple[str, Any]]] = {entity_id: [] for entity_id in entity_ids}

        @callback
        def changed(event: Event[Any]) -> None:
            entity_id = event.data["entity_id"]
            new = event.data["new_state"]
            if entity_id in self.seen and new is not None:
                self.seen[entity_id].append((new.state, new.attributes.get("last_command_status")))

        self.stop = hass.bus.async_listen(EVENT_STATE_CHANGED, changed)

    def states(self, entity_id: str) -> list[str]:
        """Return the entity's state values as they changed (an automation's triggers)."""
        values: list[str] = []
        for state, _ in self.seen[entity_id]:
            if not values or values[-1] != state:
                values.append(state)
        return values

    def clear(self) -> None:
        """Forget what was seen so far."""
        for seen in self.seen.values():
            seen.clear()


async def call(hass: HomeAssistant, domain: str, service: str, entity_id: str) -> None:
    """Call an entity action and wait for it."""
    await hass.services.async_call(domain, service, {ATTR_ENTITY_ID: entity_id}, blocking=True)


# ---- 2. an entity never shows a state the device did not report --------------------------------


async def test_lock_and_unlock_show_only_reported_states(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """unlock: locked -> unlocking -> unlocked, never "locked" again in between (it was)."""
    recorder = Recorder(hass, FRONT_DOOR)
    await call(hass, "lock", "unlock", FRONT_DOOR)
    assert recorder.states(FRONT_DOOR) == ["unlocking", "unlocked"]
    assert recorder.seen[FRONT_DOOR][-1] == ("unlocked", "completed")
    recorder.clear()
    await call(hass, "lock", "lock", FRONT_DOOR)
    assert recorder.states(FRONT_DOOR) == ["locking", "locked"]
    assert recorder.seen[FRONT_DOOR][-1] == ("locked", "completed")


async def test_switches_and_relay_locks_show_only_reported_states(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """ON/OFF on WLTE and Tasmota relays and a WLTE relay lock: "completed" is never shown with
    the state from before the command."""
    await call(hass, "switch", "turn_off", PUMP_RELAY_1)  # Tasmota reports no state until asked
    recorder = Recorder(hass, GATE_RELAY_1, PUMP_RELAY_1, GATE_LOCK_4)
    for entity_id in (GATE_RELAY_1, PUMP_RELAY_1):
        await call(hass, "switch", "turn_on", entity_id)
        await call(hass, "switch", "turn_off", entity_id)
        assert recorder.states(entity_id) == ["off", "on", "off"]
        # pending and published are shown with the old state; completed only with the new one
        completed = [state for state, status in recorder.seen[entity_id] if status == "completed"]
        assert completed[0] == "on"
        assert completed[-1] == "off"
    await call(hass, "lock", "unlock", GATE_LOCK_4)
    await call(hass, "lock", "lock", GATE_LOCK_4)
    assert recorder.states(GATE_LOCK_4) == ["unlocking", "unlocked", "locking", "locked"]


async def test_jog_shows_the_relay_as_the_device_reports_it(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """JOG: the relay's switch goes on and off as reported; the button's command completes."""
    recorder = Recorder(hass, GATE_RELAY_2, GATE_JOG_2)
    await call(hass, "button", "press", GATE_JOG_2)
    await settle(hass)
    assert recorder.states(GATE_RELAY_2) == ["off", "on", "off"]
    assert recorder.seen[GATE_JOG_2][-1][1] == "completed"


async def test_timeout_and_failure_return_to_the_reported_state(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> None:
    """A silent lock: unlocking -> locked (timeout). A rejecting relay lock: unlocking ->
    locked (failed). Nothing else in between."""
    sims[LOCK_ID].set_behaviour(mode=Mode.SILENT)
    sims[WLTE_ID].set_behaviour(mode=Mode.REJECT)
    recorder = Recorder(hass, FRONT_DOOR, GATE_LOCK_4)
    with pytest.raises(HomeAssistantError):
        await call(hass, "lock", "unlock", FRONT_DOOR)
    with pytest.raises(HomeAssistantError):
        await call(hass, "lock", "unlock", GATE_LOCK_4)
    assert recorder.states(FRONT_DOOR) == ["unlocking", "locked"]
    assert recorder.seen[FRONT_DOOR][-1] == ("locked", "timeout")
    assert recorder.states(GATE_LOCK_4) == ["unlocking", "locked"]
    assert recorder.seen[GATE_LOCK_4][-1] == ("locked", "failed")


async def test_result_before_state_message_shows_the_confirmed_state(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    sims: dict[str, SimulatedDevice],
    peer: PahoPeer,
) -> None:
    """A WLTE device that sends SUCCESS before its relay state: the relay lock goes
    locked -> unlocking -> unlocked; "locked" is not shown again once the device confirmed."""
    base = f"wlte/{PEER_ID}"
    await hass.async_add_executor_job(peer.subscribe, f"{base}/relay/1/set")
    await hass.async_add_executor_job(peer.publish, f"{base}/status", "online", True)
    await hass.async_add_executor_job(peer.publish, f"{base}/relay/1/state", "OFF", True)
    entry = await start(hass, device(PEER_ID, "wlte_relay", "Side gate", 1, relay_locks=[1]))
    await wait_for(lambda: hass.states.get(PEER_LOCK).state == "locked")
    recorder = Recorder(hass, PEER_LOCK)
    task = hass.async_create_task(call(hass, "lock", "unlock", PEER_LOCK))
    sent = await hass.async_add_executor_job(peer.expect, f"{base}/relay/1/set")
    command_id = json.loads(sent.payload)["id"]
    for status in ("ACK", "SUCCESS"):
        answer = json.dumps({"id": command_id, "status": status})
        await hass.async_add_executor_job(peer.publish, f"{base}/relay/1/result", answer)
    await task
    await hass.async_add_executor_job(peer.publish, f"{base}/relay/1/state", "ON", True)
    await wait_for(lambda: engine_of(entry).states[PEER_ID].relays[1] is True)
    await settle(hass)
    assert recorder.states(PEER_LOCK) == ["unlocking", "unlocked"]


# ---- 1. a reload never cuts a command short ----------------------------------------------------


@pytest.fixture
async def client(hass: HomeAssistant, hass_client_no_auth: Any) -> TestClient:
    """An HTTP client for the REST API (registered with the integration)."""
    assert await async_setup_component(hass, DOMAIN, {})
    return await hass_client_no_auth()


async def api_key(hass: HomeAssistant) -> str:
    """A user API key with every scope."""
    created = await hass.data[DATA_API].keys.async_create("truth test")
    return created.secret


async def test_wlte_request_waits_through_an_option_change(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    sims: dict[str, SimulatedDevice],
    client: TestClient,
) -> None:
    """A device confirming after 1 s, an option changed 0.3 s in: the synchronous answer is the
    device's SUCCESS (it was TIMEOUT when the change reloaded the hub)."""
    hass.config_entries.async_update_entry(hub, options=hub.options | {CONF_SYNC_WAIT: 5.0})
    await hass.async_block_till_done()
    sims[WLTE_ID].set_behaviour(delay=1.0)
    token = await api_key(hass)
    request = hass.async_create_task(
        client.post(
            f"/api/iotee/wlte/v1/devices/{WLTE_ID}/relays/3/commands",
            json={"action": "ON"},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "reload-1"},
        )
    )
    await asyncio.sleep(0.3)
    hass.config_entries.async_update_entry(hub, options=hub.options | {CONF_RETENTION_DAYS: 30})
    response = await request
    body = await response.json()
    assert response.status == 202
    assert body["data"]["status"] == "SUCCESS"


async def test_wait_action_and_deadline_hold_through_a_reload(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> None:
    """The user's Reload while a ``wait: true`` action runs: the action answers the device's
    outcome; a command nobody answers times out at its original deadline, not earlier."""
    sims[WLTE_ID].set_behaviour(delay=0.8)
    sims[LOCK_ID].set_behaviour(mode=Mode.SILENT)
    silent = await engine_of(hub).async_submit(LOCK_ID, "unlock", source="test")
    action = hass.async_create_task(
        hass.services.async_call(
            DOMAIN,
            "relay_command",
            {"device": WLTE_ID, "relay": 2, "action": "ON", "wait": True},
            blocking=True,
            return_response=True,
        )
    )
    await asyncio.sleep(0.3)
    assert await hass.config_entries.async_reload(hub.entry_id)
    response = await action
    assert response is not None
    assert response["status"] == "completed"
    final = await engine_of(hub).async_wait(silent.command_id, TIMEOUT + 1)
    assert final.status is CommandStatus.TIMEOUT
    ended = final.transition_at(CommandStatus.TIMEOUT)
    assert ended is not None
    assert timedelta(0) <= ended - silent.deadline < timedelta(seconds=0.5)
    assert "no confirmation within" in (final.error or "")


async def test_device_changes_leave_other_devices_alone(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> None:
    """Adding, reconfiguring and removing a device, or changing an option, writes no state of
    the other devices' entities (no reload), and a command in flight to them completes."""
    others = (FRONT_DOOR, PUMP_RELAY_1, "button.front_door_restart")
    # The pump's answer to IoTee's state ask at start comes in when it comes: wait for it, so
    # that only what the device changes below could write the pump's state.
    await wait_for(lambda: hass.states.get(PUMP_RELAY_1).state != "unknown")
    recorder = Recorder(hass, *others)
    sims[LOCK_ID].set_behaviour(delay=0.5)
    unlock = hass.async_create_task(call(hass, "lock", "unlock", FRONT_DOOR))
    await wait_for(lambda: hass.states.get(FRONT_DOOR).state == "unlocking")

    new = device("newdev000001", "wlte_relay", "Barn", 2)
    hass.config_entries.async_add_subentry(
        hub,
        ConfigSubentry(
            data=new["data"],
            subentry_type=new["subentry_type"],
            title=new["title"],
            unique_id=new["unique_id"],
        ),
    )
    await hass.async_block_till_done()
    assert hass.states.get("switch.barn_relay_2") is not None
    assert "newdev000001" in engine_of(hub).devices

    gate = next(s for s in hub.subentries.values() if s.data["hardware_id"] == WLTE_ID)
    hass.config_entries.async_update_subentry(hub, gate, data={**gate.data, CONF_RELAYS: 2})
    await hass.async_block_till_done()
    assert hass.states.get(GATE_RELAY_2) is not None
    assert hass.states.get("switch.gate_controller_relay_3") is None
    assert er.async_get(hass).async_get(GATE_LOCK_4) is None
    assert engine_of(hub).devices[WLTE_ID].relays == 2

    hass.config_entries.async_update_entry(hub, options=hub.options | {CONF_COMMAND_TIMEOUT: 2})
    barn = next(s for s in hub.subentries.values() if s.data["hardware_id"] == "newdev000001")
    assert hass.config_entries.async_remove_subentry(hub, barn.subentry_id)
    await hass.async_block_till_done()
    assert hass.states.get("switch.barn_relay_2") is None
    assert engine_of(hub).settings.command_timeout == 2

    await unlock
    assert recorder.states(FRONT_DOOR) == ["unlocking", "unlocked"]  # its own command only
    assert recorder.seen[PUMP_RELAY_1] == []
    assert recorder.seen["button.front_door_restart"] == []


# ---- 3. entity attributes survive reloads and restarts -----------------------------------------


async def test_last_command_attributes_survive_reload_and_restart(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """The last command of each target is shown again after a reload and after a restart."""
    await call(hass, "lock", "unlock", FRONT_DOOR)
    await call(hass, "switch", "turn_on", PUMP_RELAY_1)
    shown = {e: dict(hass.states.get(e).attributes) for e in (FRONT_DOOR, PUMP_RELAY_1)}
    assert shown[FRONT_DOOR]["last_command"] == "unlock"

    assert await hass.config_entries.async_reload(hub.entry_id)
    await hass.async_block_till_done()
    for entity_id, attributes in shown.items():
        assert dict(hass.states.get(entity_id).attributes) == attributes

    await stop_hub(hass, hub)
    assert await hass.config_entries.async_setup(hub.entry_id)
    await hass.async_block_till_done()
    for entity_id, attributes in shown.items():
        restored = hass.states.get(entity_id).attributes
        assert restored["last_command_id"] == attributes["last_command_id"]
        assert restored["last_command_status"] == "completed"
        assert restored["last_command_at"] == attributes["last_command_at"]
    assert hass.states.get(GATE_RELAY_1).attributes["last_command_id"] is None


# ---- 4. late answers are credited correctly ----------------------------------------------------


async def timed_out_lock(hass: HomeAssistant, hub: MockConfigEntry, command: str = "lock") -> Any:
    """A lock command the (silent) device never answered in time."""
    record = await engine_of(hub).async_submit(LOCK_ID, command, source="test")
    final = await engine_of(hub).async_wait(record.command_id, TIMEOUT + 1)
    assert final.status is CommandStatus.TIMEOUT
    return final


async def test_late_confirmation_after_delete_or_purge_brings_nothing_back(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice], peer: PahoPeer
) -> None:
    """A confirmation arriving after its command was deleted (or purged) is not stored."""
    sims[LOCK_ID].set_behaviour(mode=Mode.SILENT)
    engine = engine_of(hub)
    deleted = await timed_out_lock(hass, hub, "unlock")
    assert await engine.async_delete(deleted.command_id)
    purged = await timed_out_lock(hass, hub, "unlock")
    await asyncio.sleep(0.01)
    _, count = await engine.async_purge(0)
    assert count >= 1
    await hass.async_add_executor_job(peer.publish, f"iotee/dev/{LOCK_ID}/rls/state", "0")
    await wait_for(lambda: engine.states[LOCK_ID].locked is False)
    await settle(hass)
    assert await engine.async_get(deleted.command_id) is None
    assert await engine.async_get(purged.command_id) is None
    await engine.store.flush()
    assert await engine.store.get(deleted.command_id) is None


async def test_state_after_a_newer_command_is_not_credited_to_a_timed_out_one(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> None:
    """unlock A times out; unlock B goes out and the device's state completes B; A gets no late
    confirmation (the device answered B)."""
    sims[LOCK_ID].set_behaviour(mode=Mode.SILENT)
    first = await timed_out_lock(hass, hub, "unlock")
    sims[LOCK_ID].set_behaviour(mode=Mode.NORMAL)
    second = await engine_of(hub).async_submit(LOCK_ID, "unlock", source="test")
    done = await engine_of(hub).async_wait(second.command_id, TIMEOUT + 1)
    assert done.status is CommandStatus.COMPLETED
    await settle(hass)
    stored = await engine_of(hub).async_get(first.command_id)
    assert stored is not None
    assert stored.late_confirmation is None


async def test_late_state_without_newer_command_is_credited(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice], peer: PahoPeer
) -> None:
    """The counterpart: with no newer command, a late state is recorded on the timed-out one."""
    sims[LOCK_ID].set_behaviour(mode=Mode.SILENT)
    first = await timed_out_lock(hass, hub, "unlock")
    await hass.async_add_executor_job(peer.publish, f"iotee/dev/{LOCK_ID}/rls/state", "0")
    await wait_for(lambda: first.late_confirmation is not None)
    assert first.late_confirmation == "completed: 0"


async def test_result_naming_a_superseded_command_is_recorded_on_it(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """WLTE: ON (A) is superseded by OFF (B); the device's SUCCESS naming A is kept on A."""
    base = f"wlte/{PEER_ID}"
    await hass.async_add_executor_job(peer.subscribe, f"{base}/relay/1/set")
    await hass.async_add_executor_job(peer.publish, f"{base}/status", "online", True)
    entry = await setup_hub(
        hass, (device(PEER_ID, "wlte_relay", "Side gate", 1),), **{CONF_COMMAND_TIMEOUT: 5}
    )
    await engine_subscribed(hass, entry)
    await wait_for(lambda: engine_of(entry).states[PEER_ID].online is True)
    engine = engine_of(entry)
    first = await engine.async_submit(PEER_ID, "ON", relay=1, source="test")
    second = await engine.async_submit(PEER_ID, "OFF", relay=1, source="test")
    assert first.error_code == "superseded"
    for record in (first, second):
        await hass.async_add_executor_job(peer.expect, f"{base}/relay/1/set")
        answer = json.dumps({"id": record.command_id, "status": "SUCCESS"})
        await hass.async_add_executor_job(peer.publish, f"{base}/relay/1/result", answer)
    assert (await engine.async_wait(second.command_id, 5)).status is CommandStatus.COMPLETED
    await wait_for(lambda: first.late_confirmation is not None)
    assert first.status is CommandStatus.FAILED
    assert first.late_confirmation is not None
    assert first.late_confirmation.startswith("completed: ")


async def test_refused_command_does_not_supersede_the_open_one(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> None:
    """A command refused before it goes out (MQTT not connected) leaves the open one open."""
    sims[LOCK_ID].set_behaviour(delay=0.5)
    engine = engine_of(hub)
    first = await engine.async_submit(LOCK_ID, "unlock", source="test")
    with patch("custom_components.iotee.engine.mqtt.is_connected", return_value=False):
        refused = await engine.async_submit(LOCK_ID, "lock", source="test")
    assert refused.status is CommandStatus.FAILED
    assert refused.error_code == "publish_failed"
    assert not first.status.is_terminal
    final = await engine.async_wait(first.command_id, TIMEOUT + 1)
    assert final.status is CommandStatus.COMPLETED


async def test_unloaded_hub_tracks_its_open_command_to_the_end_then_stops(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> None:
    """The hub unloaded (disabled, not reloaded) with a command open: the engine still credits
    the device's answer, then stops and closes the store; without an open command it stops at
    once."""
    sims[WLTE_ID].set_behaviour(delay=0.6)
    engine = engine_of(hub)
    record = await engine.async_submit(WLTE_ID, "ON", 1, source="test")
    assert await hass.config_entries.async_unload(hub.entry_id)
    assert hass.data.get(DATA_KEPT) is not None
    final = await engine.async_wait(record.command_id, TIMEOUT + 1)
    assert final.status is CommandStatus.COMPLETED
    await wait_for(lambda: hass.data.get(DATA_KEPT) is None)

    assert await hass.config_entries.async_setup(hub.entry_id)
    await engine_subscribed(hass, hub)
    assert engine_of(hub) is not engine
    stored = await engine_of(hub).async_get(record.command_id)
    assert stored is not None
    assert stored.status is CommandStatus.COMPLETED
    assert await hass.config_entries.async_unload(hub.entry_id)
    assert hass.data.get(DATA_KEPT) is None
