"""The rig itself: HA's real MQTT client and a real mosquitto, both directions."""

from __future__ import annotations

import asyncio

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant, callback
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .broker import PahoPeer
from .conftest import subscribed


async def test_ha_publish_reaches_plain_client(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """A message HA publishes arrives at a paho subscriber through the broker."""
    await hass.async_add_executor_job(peer.subscribe, "rig/out")
    await mqtt.async_publish(hass, "rig/out", "hello from HA", qos=1)
    message = await hass.async_add_executor_job(peer.expect, "rig/out")
    assert message.payload == "hello from HA"
    assert message.retain is False


async def test_plain_client_publish_reaches_ha(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """A message a paho client publishes reaches an HA subscription callback."""
    received: asyncio.Queue[mqtt.ReceiveMessage] = asyncio.Queue()

    @callback
    def on_message(msg: mqtt.ReceiveMessage) -> None:
        received.put_nowait(msg)

    unsubscribe = await mqtt.async_subscribe(hass, "rig/in", on_message)
    await subscribed(hass, "rig/in")
    await hass.async_add_executor_job(peer.publish, "rig/in", "hello from outside")
    async with asyncio.timeout(5):
        msg = await received.get()
    assert msg.payload == "hello from outside"
    assert msg.topic == "rig/in"
    unsubscribe()
