"""Shelly, Zigbee2MQTT and ESPHome devices end to end: HA's MQTT client, a real mosquitto, the
simulated firmware; through the engine, the entities and both REST APIs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any
import uuid

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.api.state import DATA_API
from custom_components.iotee.const import (
    CONF_COMMAND_TIMEOUT,
    CONF_DEVICE_TYPE,
    CONF_HARDWARE_ID,
    CONF_RELAY_COOLDOWN,
    CONF_RELAY_LOCKS,
    CONF_RELAYS,
    CONF_SYNC_WAIT,
    DOMAIN,
    SUBENTRY_DEVICE,
)
from custom_components.iotee.core.model import CommandRecord, CommandStatus
from custom_components.iotee.engine import CommandEngine
from simulator import Behaviour, Kind, Mode, SimulatedDevice

from .api_openapi import checked
from .broker import Mosquitto, PahoPeer
from .conftest import wait_for
from .helpers import engine_of, engine_subscribed, setup_hub

TIMEOUT = 1.5
SRC = "iotee-test"


def family_device(
    hardware_id: str, device_type: str, name: str, relays: int = 0, **settings: Any
) -> ConfigSubentryData:
    """Return the subentry of one family device, as the add-device flow stores it."""
    data: dict[str, Any] = {CONF_HARDWARE_ID: hardware_id, CONF_DEVICE_TYPE: device_type}
    if relays:
        data |= {CONF_RELAYS: relays, CONF_RELAY_LOCKS: []}
    return ConfigSubentryData(
        data=data | settings, subentry_type=SUBENTRY_DEVICE, title=name, unique_id=hardware_id
    )


DEVICES = (
    family_device("sh1", "shelly_gen2", "Garage", 2, src=SRC, jog_seconds="0.2"),
    family_device("door", "zigbee2mqtt_lock", "Back door"),
    family_device("gate", "zigbee2mqtt_switch", "Gate", 2, base_topic="z2m"),
    family_device("garage", "esphome_lock", "Garage door", object_id="bolt"),
    family_device("board", "esphome_switch", "Board", 2, relay_keys=["pump", "valve"]),
)
SIMULATED = {
    "sh1": (Kind.SHELLY_GEN2, {"relays": 2}),
    "door": (Kind.ZIGBEE2MQTT_LOCK, {}),
    "gate": (Kind.ZIGBEE2MQTT_SWITCH, {"relays": 2, "base_topic": "z2m"}),
    "garage": (Kind.ESPHOME_LOCK, {"object_ids": ("bolt",)}),
    "board": (Kind.ESPHOME_SWITCH, {"relays": 2, "object_ids": ("pump", "valve")}),
}


@pytest.fixture
async def sims(
    hass: HomeAssistant, mosquitto: Mosquitto
) -> AsyncGenerator[dict[str, SimulatedDevice]]:
    """One simulated device per family device, online."""
    devices = {
        hardware_id: SimulatedDevice(
            kind,
            hardware_id,
            mosquitto.host,
            mosquitto.port,
            behaviour=Behaviour(reboot_delay=0.2),
            **options,
        )
        for hardware_id, (kind, options) in SIMULATED.items()
    }
    for device in devices.values():
        await hass.async_add_executor_job(device.start)
    yield devices
    for device in devices.values():
        await hass.async_add_executor_job(device.stop)


@pytest.fixture
async def hub(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> MockConfigEntry:
    """The hub with the family devices, every one known online."""
    entry = await setup_hub(
        hass,
        DEVICES,
        **{CONF_COMMAND_TIMEOUT: TIMEOUT, CONF_SYNC_WAIT: 5.0, CONF_RELAY_COOLDOWN: 0},
    )
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    await wait_for(lambda: all(engine.states[hw].online for hw in SIMULATED))
    return entry


async def run(engine: CommandEngine, hardware_id: str, command: str, relay: int | None) -> Any:
    """Send a command and wait for its end."""
    record = await engine.async_submit(hardware_id, command, relay, source="test")
    return await engine.async_wait(record.command_id, TIMEOUT + 3)


async def behave(hass: HomeAssistant, device: SimulatedDevice, **behaviour: Any) -> None:
    await hass.async_add_executor_job(lambda: device.set_behaviour(**behaviour))


CONFIRMED = [
    ("sh1", [("ON", 1), ("OFF", 1), ("JOG", 2)]),
    ("door", [("unlock", None), ("lock", None)]),
    ("gate", [("ON", 2), ("OFF", 2), ("ON", 1)]),
    ("garage", [("unlock", None), ("lock", None)]),
    ("board", [("ON", 2), ("OFF", 2)]),
]


@pytest.mark.parametrize(("hardware_id", "commands"), CONFIRMED, ids=[c[0] for c in CONFIRMED])
async def test_commands_are_confirmed_by_the_device(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    sims: dict[str, SimulatedDevice],
    hardware_id: str,
    commands: list[tuple[str, int | None]],
) -> None:
    """Each command completes on the device's own answer; the state follows."""
    engine = engine_of(hub)
    for command, relay in commands:
        final = await run(engine, hardware_id, command, relay)
        assert final.status is CommandStatus.COMPLETED, (command, relay, final.error)
        assert (
            final.device_type
            == DEVICES[list(SIMULATED).index(hardware_id)]["data"][CONF_DEVICE_TYPE]
        )
        state = engine.states[hardware_id]
        if relay is None:
            await wait_for(lambda s=state, c=command: s.locked is (c == "lock"))
        elif command != "JOG":
            await wait_for(lambda s=state, c=command, r=relay: s.relays.get(r) is (c == "ON"))
    assert await hub.runtime_data.store.get(final.command_id) is not None


async def test_shelly_jog_pulses_and_completes_on_the_answer(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> None:
    """JOG is Switch.Set with toggle_after: completed at once, the relay back off after it."""
    engine = engine_of(hub)
    final = await run(engine, "sh1", "JOG", 1)
    assert final.status is CommandStatus.COMPLETED
    assert '"toggle_after": 0.2' in final.payload
    await wait_for(lambda: sims["sh1"].state["relay1"] is True)
    await wait_for(lambda: sims["sh1"].state["relay1"] is False)
    await wait_for(lambda: engine.states["sh1"].relays.get(1) is False)


@pytest.mark.parametrize(
    ("hardware_id", "command", "relay", "error"),
    [
        ("sh1", "ON", 1, "Output is overheated (simulated failure) (code -109)"),
        ("door", "lock", None, "device reported not_fully_locked"),
        ("garage", "lock", None, "device reported JAMMED"),
    ],
)
async def test_device_error_fails_with_the_devices_message(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    sims: dict[str, SimulatedDevice],
    hardware_id: str,
    command: str,
    relay: int | None,
    error: str,
) -> None:
    engine = engine_of(hub)
    if relay is None:  # from unlocked, so that locking is a change
        assert (await run(engine, hardware_id, "unlock", None)).status is CommandStatus.COMPLETED
    await behave(hass, sims[hardware_id], mode=Mode.FAIL)
    final = await run(engine, hardware_id, command, relay)
    assert (final.status, final.error_code, final.error) == (
        CommandStatus.FAILED,
        "device_failed",
        error,
    )
    if relay is None:
        await wait_for(lambda: engine.states[hardware_id].locked is None)  # jammed: unknown


@pytest.mark.parametrize(
    ("hardware_id", "command", "relay"),
    [("sh1", "ON", 2), ("door", "unlock", None), ("gate", "ON", 1), ("garage", "unlock", None)],
)
async def test_silence_is_timeout_and_a_late_answer_is_recorded(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    sims: dict[str, SimulatedDevice],
    hardware_id: str,
    command: str,
    relay: int | None,
) -> None:
    """A device slower than the command timeout: timeout, then its answer kept as late."""
    await behave(hass, sims[hardware_id], delay=TIMEOUT + 0.5)
    final = await run(engine_of(hub), hardware_id, command, relay)
    assert (final.status, final.error_code) == (CommandStatus.TIMEOUT, "timeout")
    await wait_for(lambda: final.late_confirmation is not None)
    assert final.late_confirmation.startswith("completed: ")
    assert final.status is CommandStatus.TIMEOUT


@pytest.mark.parametrize("hardware_id", ["board"])
async def test_silent_device_times_out(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice], hardware_id: str
) -> None:
    await behave(hass, sims[hardware_id], mode=Mode.SILENT)
    final = await run(engine_of(hub), hardware_id, "ON", 1)
    assert (final.status, final.error_code) == (CommandStatus.TIMEOUT, "timeout")


async def test_esphome_command_to_the_current_state_times_out(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """ESPHome publishes a state only when it changes: no answer to OFF on an OFF switch."""
    engine = engine_of(hub)
    await wait_for(lambda: engine.states["board"].relays.get(1) is False)
    final = await run(engine, "board", "OFF", 1)
    assert final.status is CommandStatus.TIMEOUT


@pytest.mark.parametrize(
    ("hardware_id", "command", "relay"),
    [
        ("sh1", "ON", 1),
        ("door", "unlock", None),
        ("gate", "ON", 2),
        ("garage", "unlock", None),
        ("board", "ON", 1),
    ],
)
async def test_offline_device_fails_device_offline(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    sims: dict[str, SimulatedDevice],
    hardware_id: str,
    command: str,
    relay: int | None,
) -> None:
    """An open command fails when the device goes offline; a new one fails at once."""
    engine = engine_of(hub)
    device = sims[hardware_id]
    await behave(hass, device, mode=Mode.SILENT)
    record = await engine.async_submit(hardware_id, command, relay, source="test")
    await behave(hass, device, mode=Mode.OFFLINE)
    final = await engine.async_wait(record.command_id, TIMEOUT + 3)
    assert (final.status, final.error_code) == (CommandStatus.FAILED, "device_offline")
    await wait_for(lambda: engine.states[hardware_id].online is False)
    again = await engine.async_submit(hardware_id, command, relay, source="test")
    assert (again.status, again.error_code) == (CommandStatus.FAILED, "device_offline")


# ---- entities ------------------------------------------------------------------------------


async def test_entities_of_the_families(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> None:
    """Locks and switches act through the device and show what it confirmed."""
    # Zigbee2MQTT retains no state (the devices announced theirs before the hub subscribed):
    # IoTee asked each of them once subscribed (``/get``), so their states are in.
    await wait_for(lambda: hass.states.get("lock.back_door").state == "locked")
    await wait_for(lambda: hass.states.get("switch.gate_relay_2").state == "off")
    for domain, service, entity_id, expected in (
        ("lock", "unlock", "lock.back_door", "unlocked"),
        ("lock", "unlock", "lock.garage_door", "unlocked"),
        ("switch", "turn_on", "switch.garage_relay_2", "on"),
        ("switch", "turn_on", "switch.gate_relay_1", "on"),
        ("switch", "turn_on", "switch.board_relay_2", "on"),
    ):
        await hass.services.async_call(domain, service, {ATTR_ENTITY_ID: entity_id}, blocking=True)
        assert hass.states.get(entity_id).attributes["last_command_status"] == "completed"
        # The state is what the device reports (Shelly's status may follow its answer).
        await wait_for(lambda e=entity_id, x=expected: hass.states.get(e).state == x)
    assert sims["board"].state == {"relay1": False, "relay2": True}
    assert hass.states.get("button.garage_jog_relay_1") is not None
    assert hass.states.get("button.garage_restart") is not None


async def test_shelly_reboot_completes_on_the_answer(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    final = await run(engine_of(hub), "sh1", "reboot", None)
    assert final.status is CommandStatus.COMPLETED
    assert '"method": "Shelly.Reboot"' in final.payload


# ---- REST APIs -----------------------------------------------------------------------------


@pytest.fixture
async def client(hass: HomeAssistant, hub: MockConfigEntry, hass_client_no_auth: Any) -> Any:
    assert await async_setup_component(hass, DOMAIN, {})
    return await hass_client_no_auth()


@pytest.fixture
async def token(hass: HomeAssistant, client: TestClient) -> str:
    created = await hass.data[DATA_API].keys.async_create("families")
    return str(created.secret)


@pytest.mark.parametrize(("hardware_id", "relay"), [("sh1", 2), ("gate", 2), ("board", 1)])
async def test_wlte_api_against_a_family_device(
    hass: HomeAssistant, client: TestClient, token: str, hardware_id: str, relay: int
) -> None:
    """deviceId is the hardware id; the operation waits for the device and says SUCCESS."""
    response = await client.post(
        f"/api/iotee/wlte/v1/devices/{hardware_id}/relays/{relay}/commands",
        json={"action": "ON"},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
    )
    body = await checked(response)
    assert response.status == 202
    assert (body["data"]["deviceId"], body["data"]["status"]) == (hardware_id, "SUCCESS")


@pytest.mark.parametrize(("hardware_id", "command"), [("door", "unlock"), ("garage", "unlock")])
async def test_commands_api_against_a_family_lock(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    client: TestClient,
    token: str,
    hardware_id: str,
    command: str,
) -> None:
    response = await client.post(
        f"/api/iotee/devices/{hardware_id}/commands",
        json={"command": command},
        headers={"X-API-Key": token},
    )
    body = await checked(response)
    assert response.status == 201
    final: CommandRecord = await engine_of(hub).async_wait(body["command_id"], TIMEOUT + 3)
    assert final.status is CommandStatus.COMPLETED


async def test_zigbee2mqtt_devices_are_asked_for_their_state_once(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """One ``/get`` per Zigbee2MQTT device naming the fields IoTee reads, never repeated when
    devices are synced again."""
    engine = engine_of(hub)
    assert engine.device("door").state_requests() == [("zigbee2mqtt/door/get", '{"state": ""}')]
    assert engine.device("gate").state_requests() == [
        ("z2m/gate/get", '{"state_l1": "", "state_l2": ""}')
    ]
    assert engine.device("sh1").state_requests() == []
    # The setup's own asks go out in a background task once the subscriptions are acknowledged;
    # on a busy machine that can be after the hub fixture returned.
    await hass.async_block_till_done(wait_background_tasks=True)
    await hass.async_add_executor_job(peer.subscribe, "+/+/get")
    seen: list[str] = []
    peer.handlers.append(lambda _c, m: seen.append(m.topic))
    await engine.async_subscribe_devices()
    await asyncio.sleep(0.3)
    assert seen == []
