"""A large home starting on a broker with mosquitto's default configuration.

When IoTee subscribes, the broker sends every device's retained availability and state at once.
A broker holds only so many unacknowledged QoS 1 messages per client (mosquitto by default 20 in
flight and 1,000 queued) and drops the rest, so a subscription at QoS 1 lost most of the states
of a home with more than about 1,020 retained topics: its devices showed "unknown" until they
next reported. IoTee subscribes at QoS 0, which the broker does not limit for a connected client.
"""

from __future__ import annotations

from homeassistant.components.lock import LockState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import DOMAIN

from .broker import PahoPeer
from .conftest import wait_for
from .helpers import device, engine_of, setup_hub

LOCKS = 600
"""Each leaves two retained messages: 1,200, more than mosquitto's default 1,020 per client."""


def _lock_id(index: int) -> str:
    return f"LOCK{index:04d}"


async def test_every_retained_state_of_a_large_home_is_taken_in(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """Every lock's retained availability and state is on its entity after the hub starts."""

    def publish_retained() -> None:
        for index in range(LOCKS):
            hardware_id = _lock_id(index)
            peer.publish(f"iotee/dev/{hardware_id}/status", "online", retain=True)
            peer.publish(f"iotee/dev/{hardware_id}/rls/state", str(index % 2), retain=True)

    # Off the event loop: each publish waits for the broker's acknowledgement.
    await hass.async_add_executor_job(publish_retained)

    entry = await setup_hub(
        hass, devices=tuple(device(_lock_id(index), "iotee_device") for index in range(LOCKS))
    )
    states = engine_of(entry).states

    def taken_in() -> int:
        return sum(
            1 for state in states.values() if state.online is not None and state.locked is not None
        )

    try:
        await wait_for(lambda: taken_in() == LOCKS, timeout=30)
    except TimeoutError:
        raise AssertionError(f"{taken_in()} of {LOCKS} locks got their retained state") from None
    await hass.async_block_till_done()

    registry = er.async_get(hass)
    for index in range(LOCKS):
        hardware_id = _lock_id(index)
        assert states[hardware_id].online is True
        entity_id = registry.async_get_entity_id("lock", DOMAIN, f"{hardware_id}_lock")
        assert entity_id is not None
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.state == (LockState.UNLOCKED if index % 2 == 0 else LockState.LOCKED)
