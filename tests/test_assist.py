"""Assist (the conversation agent) locks, unlocks and switches IoTee entities."""

from __future__ import annotations

from collections.abc import Generator

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import Context, HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT
from simulator import SimulatedDevice

from .broker import Mosquitto
from .conftest import wait_for
from .helpers import LOCK_ID, WLTE_ID, engine_subscribed, setup_hub


@pytest.fixture
def devices(mosquitto: Mosquitto) -> Generator[None]:
    """A simulated lock and WLTE relay controller."""
    with (
        SimulatedDevice("iotee_device", LOCK_ID, mosquitto.host, mosquitto.port),
        SimulatedDevice("wlte_relay", WLTE_ID, mosquitto.host, mosquitto.port, relays=4),
    ):
        yield


async def converse(hass: HomeAssistant, text: str) -> str:
    """Say ``text`` to Assist and return the kind of answer."""
    result = await conversation.async_converse(hass, text, None, Context(), "en")
    return result.response.response_type.value


async def test_assist_locks_unlocks_and_switches(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, devices: None
) -> None:
    """'unlock the front door' and 'turn on gate controller relay 1' run tracked commands."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    assert await async_setup_component(hass, "intent", {})
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 3.0})
    await engine_subscribed(hass, entry)
    await wait_for(lambda: hass.states.get("lock.front_door").state == "locked")
    for entity_id in ("lock.front_door", "switch.gate_controller_relay_1"):
        async_expose_entity(hass, conversation.DOMAIN, entity_id, True)

    assert await converse(hass, "unlock the front door") == "action_done"
    await wait_for(lambda: hass.states.get("lock.front_door").state == "unlocked")
    state = hass.states.get("lock.front_door")
    assert state.attributes["last_command_status"] == "completed"

    assert await converse(hass, "lock the front door") == "action_done"
    await wait_for(lambda: hass.states.get("lock.front_door").state == "locked")

    assert await converse(hass, "turn on gate controller relay 1") == "action_done"
    await wait_for(lambda: hass.states.get("switch.gate_controller_relay_1").state == "on")
