"""Command QoS, a hub option: what the device receives, and what stays true with either."""

from __future__ import annotations

from homeassistant.core import Event, HomeAssistant, callback
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import (
    CONF_COMMAND_QOS,
    CONF_RETENTION_DAYS,
    EVENT_COMMAND_STATUS,
)
from custom_components.iotee.core.model import CommandStatus

from .broker import Mosquitto, PahoPeer
from .helpers import WLTE_ID, default_simulators, engine_of, engine_subscribed, running, setup_hub

SET_TOPIC = f"wlte/{WLTE_ID}/relay/1/set"


@pytest.mark.parametrize(("option", "qos"), [("auto", 0), (1, 1), (0, 0)])
async def test_commands_go_out_at_the_chosen_qos_and_end_only_with_the_devices_answer(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    mosquitto: Mosquitto,
    option: str | int,
    qos: int,
) -> None:
    """The command reaches the device at the hub's QoS - automatic: 0, as the controller
    confirms - (a watcher subscribed at QoS 1 gets it at the lower of the two), and with each
    its record goes published, acknowledged, completed: the device's answer, not the publish,
    ends it."""
    entry = await setup_hub(hass, **{CONF_COMMAND_QOS: option})
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    seen: list[str] = []

    @callback
    def on_status(event: Event) -> None:
        seen.append(event.data["new_status"])

    hass.bus.async_listen(EVENT_COMMAND_STATUS, on_status)
    watcher = PahoPeer(mosquitto, "watcher").connect()
    await hass.async_add_executor_job(watcher.subscribe, SET_TOPIC)
    sims = default_simulators(mosquitto, with_tasmota=False)
    with running(sims):
        record = await engine.async_submit(WLTE_ID, "ON", 1, source="test")
        final = await engine.async_wait(record.command_id, 5)
        message = await hass.async_add_executor_job(watcher.expect, SET_TOPIC)
    watcher.close()
    assert final.status is CommandStatus.COMPLETED, final
    assert seen == ["published", "acknowledged", "completed"]
    assert message.qos == qos


async def test_a_changed_qos_applies_to_the_next_command(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, mosquitto: Mosquitto
) -> None:
    """Options apply in place (no reload): the command after the change from the default
    (automatic: QoS 0 to a controller that confirms) goes out at QoS 1, and the engine takes
    the other options with it (the retention bounds a queued command)."""
    entry = await setup_hub(hass)
    await engine_subscribed(hass, entry)
    watcher = PahoPeer(mosquitto, "watcher").connect()
    await hass.async_add_executor_job(watcher.subscribe, SET_TOPIC)
    delivered: list[int] = []
    for _ in range(2):
        engine = engine_of(entry)
        await engine.async_submit(WLTE_ID, "ON", 1, source="test")
        message = await hass.async_add_executor_job(watcher.expect, SET_TOPIC)
        delivered.append(message.qos)
        options = {**entry.options, CONF_COMMAND_QOS: 1, CONF_RETENTION_DAYS: 7}
        hass.config_entries.async_update_entry(entry, options=options)
        await hass.async_block_till_done()
        await engine_subscribed(hass, entry)
    watcher.close()
    assert delivered == [0, 1]
    assert engine_of(entry).settings.retention_days == 7
