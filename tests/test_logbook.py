"""The Activity page: one readable line per command outcome, with its icon and user."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from homeassistant.core import Context, Event, HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT, DOMAIN, EVENT_COMMAND_STATUS
from custom_components.iotee.logbook import describe_outcome
from custom_components.iotee.outcomes import EVENT_COMMAND_OUTCOME
from simulator import SimulatedDevice

from .broker import Mosquitto
from .helpers import LOCK_ID, TASMOTA_ID, WLTE_ID, engine_of, engine_subscribed, setup_hub


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """Prepare the recorder's database before hass starts (for ``recorder_mock``)."""


@pytest.fixture
def lock_device(mosquitto: Mosquitto) -> Generator[SimulatedDevice]:
    """A simulated iotee_device, online and locked."""
    with SimulatedDevice("iotee_device", LOCK_ID, mosquitto.host, mosquitto.port) as device:
        yield device


async def test_activity_page_shows_one_line_per_outcome(
    recorder_mock: Any,
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    lock_device: SimulatedDevice,
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
) -> None:
    """An unlock through the lock entity is one line: what happened, how fast, who, an icon."""
    assert await async_setup_component(hass, "logbook", {})
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 1.0})
    await engine_subscribed(hass, entry)
    start = dt_util.utcnow()
    await hass.services.async_call(
        "lock",
        "unlock",
        {"entity_id": "lock.front_door"},
        blocking=True,
        context=Context(user_id=hass_admin_user.id),
    )
    # The Tasmota device has no simulator: its command times out.
    silent = await engine_of(entry).async_submit(TASMOTA_ID, "ON", 2, source="test")
    await engine_of(entry).async_wait(silent.command_id, 3)
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)

    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "logbook/get_events", "start_time": start.isoformat()})
    answer = await client.receive_json()
    assert answer["success"], answer
    lines = [line for line in answer["result"] if line.get("domain") == DOMAIN]
    assert len(lines) == 2, lines
    unlocked, timed_out = lines
    assert unlocked["name"] == "Front door"
    assert unlocked["message"].startswith("unlocked — confirmed by the device in ")
    assert unlocked["message"].endswith(" ms")
    assert unlocked["icon"] == "mdi:lock-open-variant"
    assert unlocked["entity_id"] == "lock.front_door"
    assert unlocked["context_user_id"] == hass_admin_user.id
    assert timed_out["name"] == "Garden pump"
    # The entity's name ("Relay 2") is shown beside the line: the message does not repeat it.
    assert timed_out["message"] == "ON timed out — not confirmed within 1 s"
    assert timed_out["icon"] == "mdi:timer-alert-outline"
    assert timed_out["entity_id"] == "switch.garden_pump_relay_2"
    assert "context_user_id" not in timed_out
    assert not any("is timeout" in line.get("message", "") for line in answer["result"])


async def test_outcome_fired_once_when_a_command_ends(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, lock_device: SimulatedDevice
) -> None:
    entry = await setup_hub(hass)
    await engine_subscribed(hass, entry)
    outcomes: list[Event] = []
    statuses: list[Event] = []
    hass.bus.async_listen(EVENT_COMMAND_OUTCOME, outcomes.append)
    hass.bus.async_listen(EVENT_COMMAND_STATUS, statuses.append)
    record = await engine_of(entry).async_submit(LOCK_ID, "unlock", source="api", caller="user:u1")
    await engine_of(entry).async_wait(record.command_id, 5)
    await hass.async_block_till_done()
    assert len(statuses) == 2  # published, completed: automations still see every change
    (outcome,) = outcomes
    assert outcome.context.user_id == "u1"
    assert outcome.data["status"] == "completed"
    assert outcome.data["command_id"] == record.command_id
    assert outcome.data["entity_id"] == "lock.front_door"
    assert outcome.data["device_id"] == engine_of(entry).device(LOCK_ID).device_id
    assert 0 <= outcome.data["duration_ms"] < 5000


@pytest.mark.parametrize(
    ("data", "message", "icon"),
    [
        (
            {"command": "lock", "status": "completed", "duration_ms": 48},
            "locked — confirmed by the device in 48 ms",
            "mdi:lock",
        ),
        (
            {"command": "JOG", "relay": 3, "status": "completed", "duration_ms": 1520},
            "relay 3 pulsed — confirmed by the device in 1.5 s",
            "mdi:gesture-tap-button",
        ),
        (
            {"command": "ON", "relay": 4, "relay_lock": True, "status": "completed"}
            | {"duration_ms": 90},
            "relay 4 unlocked — confirmed by the device in 90 ms",
            "mdi:toggle-switch",
        ),
        (
            {"command": "reboot", "status": "timeout", "timeout_s": 10.0},
            "reboot timed out — not confirmed within 10 s",
            "mdi:timer-alert-outline",
        ),
        (
            {"command": "ON", "relay": 2, "status": "published", "duration_ms": 3},
            "relay 2 ON sent — the device does not confirm commands",
            "mdi:send-check",
        ),
        (
            {"command": "OFF", "relay": 1, "status": "failed", "error": "relay stuck"}
            | {"retry_of": "c0"},
            "relay 1 OFF failed — relay stuck (retry)",
            "mdi:alert-circle",
        ),
        (
            {"command": "ON", "relay": 2, "status": "completed", "duration_ms": 80}
            | {"attempts": 3},
            "relay 2 switched on — confirmed by the device in 80 ms after 3 attempts",
            "mdi:toggle-switch",
        ),
        (
            {"command": "ON", "relay": 2, "status": "queued", "queued_until": None},
            "relay 2 ON queued until the device is back",
            "mdi:timer-sand",
        ),
    ],
)
async def test_outcome_lines_read_naturally(
    hass: HomeAssistant, data: dict[str, Any], message: str, icon: str
) -> None:
    described = describe_outcome(hass, {"hardware_id": WLTE_ID, "name": "Gate"} | data)
    assert described == {"name": "Gate", "message": message, "icon": icon}


async def test_queued_line_says_until_when_in_local_time(hass: HomeAssistant) -> None:
    """ "queued until the device is back (expires 18:30)", in Home Assistant's time zone."""
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    described = describe_outcome(
        hass,
        {"hardware_id": WLTE_ID, "name": "Gate", "command": "lock", "status": "queued"}
        | {"queued_until": "2026-12-02T17:30:00.000Z"},
    )
    assert described["message"] == "lock queued until the device is back (expires 18:30)"
