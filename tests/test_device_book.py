"""The engine's book of devices: the topics it reads, and finding a device by either id."""

from __future__ import annotations

from dataclasses import replace

import pytest

from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.device_types import DEVICE_TYPES
from custom_components.iotee.core.errors import UnknownDeviceError
from custom_components.iotee.engine.devices import DeviceBook


def _wlte(hardware_id: str, relays: int = 4) -> DeviceConfig:
    return DeviceConfig(hardware_id, hardware_id, DEVICE_TYPES["wlte_relay"], relays=relays)


def _topics_of(book: DeviceBook, hardware_id: str) -> set[tuple[str, str, int | None]]:
    return {
        (topic, state.kind, state.relay)
        for topic, states in book.state_topics.items()
        for state in states
        if state.hardware_id == hardware_id
    }


def test_removing_a_device_forgets_its_topics_and_keeps_the_others() -> None:
    """A removed device's topics are no longer read; every other device's still are."""
    book = DeviceBook()
    for index in range(50):
        book.add_device(_wlte(f"W{index:02d}"))
    before = {f"W{index:02d}": _topics_of(book, f"W{index:02d}") for index in range(50)}
    assert len(before["W07"]) == 5  # availability and four relays

    book.remove_device("W07")

    assert _topics_of(book, "W07") == set()
    assert "W07" not in book.devices
    assert all(_topics_of(book, hid) == topics for hid, topics in before.items() if hid != "W07")
    assert len(book.state_topics) == 49 * 5


def test_replacing_with_fewer_relays_drops_the_relays_gone() -> None:
    """A device reconfigured with two relays instead of four no longer reads relays 3 and 4."""
    book = DeviceBook()
    book.add_device(_wlte("W1"))
    book.add_device(_wlte("W2"))

    book.replace_device(_wlte("W1", relays=2))

    assert sorted(relay for _, kind, relay in _topics_of(book, "W1") if kind == "relay") == [1, 2]
    assert len(_topics_of(book, "W2")) == 5


def test_a_device_is_found_by_its_ha_device_id_until_removed() -> None:
    """Actions name devices by HA device id; the book finds them, and forgets a removed one."""
    book = DeviceBook()
    book.add_device(_wlte("W1"))
    book.add_device(_wlte("W2"))
    book.set_device_id("W1", "dev-1")
    book.set_device_id("W2", "dev-2")

    assert book.device("dev-1").hardware_id == "W1"
    assert book.device("W2").device_id == "dev-2"

    book.set_device_id("W1", "dev-1b")  # registered anew
    assert book.device("dev-1b").hardware_id == "W1"
    with pytest.raises(UnknownDeviceError):
        book.device("dev-1")

    book.replace_device(replace(book.devices["W2"], name="Gate"))
    assert book.device("dev-2").name == "Gate"
    book.remove_device("W2")
    with pytest.raises(UnknownDeviceError):
        book.device("dev-2")


def test_a_reconfigured_device_reads_its_new_field_names() -> None:
    """A Zigbee2MQTT switch whose relays were renamed reads the new names from its next
    report on (what it read before is not kept)."""
    book = DeviceBook()
    switch = DeviceConfig("hall", "Hall", DEVICE_TYPES["zigbee2mqtt_switch"], relays=2, settings={})
    book.add_device(switch)
    (topic,) = {
        topic for topic, _, _ in _topics_of(book, "hall") if not topic.endswith("/availability")
    }
    book.take_state(book.state_topics[topic], '{"state_l1": "ON", "state_l2": "OFF"}')
    assert book.states["hall"].relays == {1: True, 2: False}

    book.replace_device(replace(switch, relay_keys=("state_left", "state_right")))
    book.take_state(book.state_topics[topic], '{"state_left": "OFF", "state_right": "ON"}')
    assert book.states["hall"].relays == {1: False, 2: True}
