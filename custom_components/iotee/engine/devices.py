"""The configured devices, what they report, and who listens to them.

Owns: the device configs and their live state (availability, lock, relays), which state topics
belong to which device, applying a state message (parsed by the core), the state a confirmed
command implies, device listeners (entities), the Zigbee2MQTT bridge lists and the discovery of
unconfigured devices, and the subscription filters the devices need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
import logging

from homeassistant.core import CALLBACK_TYPE

from custom_components.iotee.core.device_config import DeviceConfig, DeviceState
from custom_components.iotee.core.device_types import (
    DEVICE_TYPES,
    DeviceType,
    StateValue,
    topic_filter as filter_for,
)
from custom_components.iotee.core.errors import UnknownDeviceError
from custom_components.iotee.core.model import CommandRecord
from custom_components.iotee.core.state_parser import read_state
from custom_components.iotee.core.zigbee2mqtt import (
    BridgeDevice,
    bridge_topics,
    parse_bridge_devices,
)

from .listeners import KeyedListeners, Listeners

_LOGGER = logging.getLogger(__name__)

type DeviceListener = Callable[[DeviceConfig, DeviceState], None]
type DiscoveryListener = Callable[[DeviceType, str], None]


@dataclass(frozen=True, slots=True)
class StateTopic:
    """One state a topic carries for a device."""

    hardware_id: str
    kind: str  # "availability", "lock", "relay"
    relay: int | None = None


def _filters(config: DeviceConfig) -> dict[str, None]:
    """Return the subscription filters covering every topic ``config``'s device uses."""
    dtype = config.device_type
    values = config.values()
    templates = [
        t for t in (dtype.availability_topic, dtype.lock_state_topic, dtype.relay_state_topic) if t
    ]
    templates += [spec.confirmation.topic for spec in dtype.commands.values()]
    return dict.fromkeys(filter_for(template, values) for template in templates if template)


@dataclass(frozen=True, slots=True)
class StateReport:
    """What one message reported: its device, and whether it came online or went offline."""

    config: DeviceConfig
    went_offline: bool = False
    came_online: bool = False


class DeviceBook:
    """The configured devices and their live state."""

    def __init__(self) -> None:
        """Start with no devices."""
        self.devices: dict[str, DeviceConfig] = {}
        self.states: dict[str, DeviceState] = {}
        self.zigbee2mqtt: dict[str, tuple[BridgeDevice, ...]] = {}
        """The locks and switches Zigbee2MQTT lists, by base topic (to pick from)."""
        self._bridge_topics: dict[str, str] = {}
        self.state_topics: dict[str, list[StateTopic]] = {}
        """State topics by topic: one topic may carry several states (a Zigbee2MQTT device's
        JSON names all its relays)."""
        self._topics_of: dict[str, list[str]] = {}
        """The state topics of each device, by hardware id (to forget them without a scan)."""
        self._readings: dict[str, dict[int | None, tuple[StateValue, ...]]] = {}
        """The lock's (None) and each relay's readings with the device's field names filled in,
        by hardware id: built at a device's first report, not with every message."""
        self._filters_of: dict[str, dict[str, None]] = {}
        """The subscription filters each device needs, by hardware id (built once)."""
        self._by_device_id: dict[str, str] = {}
        """Hardware ids by HA device registry id."""
        self._device_listeners: Listeners[DeviceListener] = Listeners()
        self._hardware_listeners: KeyedListeners[str, DeviceListener] = KeyedListeners()
        self.discovery_listeners: Listeners[DiscoveryListener] = Listeners()

    # ---- configuration -------------------------------------------------------------------

    def add_device(self, config: DeviceConfig) -> None:
        """Register a configured device and the topics it reports on."""
        self.devices[config.hardware_id] = config
        self.states.setdefault(config.hardware_id, DeviceState())
        dtype = config.device_type
        topics: list[tuple[str, StateTopic]] = []
        if dtype.availability_topic:  # a user-defined device may have none
            topics.append(
                (
                    config.topic(dtype.availability_topic),
                    StateTopic(config.hardware_id, "availability"),
                )
            )
        if dtype.lock_state_topic:
            topics.append(
                (config.topic(dtype.lock_state_topic), StateTopic(config.hardware_id, "lock"))
            )
        if dtype.relay_state_topic:
            topics += [
                (
                    config.topic(dtype.relay_state_topic, relay),
                    StateTopic(config.hardware_id, "relay", relay),
                )
                for relay in range(1, config.relays + 1)
            ]
        for topic, state_topic in topics:
            self.state_topics.setdefault(topic, []).append(state_topic)
        self._topics_of[config.hardware_id] = [topic for topic, _ in topics]
        self._filters_of[config.hardware_id] = _filters(config)
        if config.device_id is not None:
            self._by_device_id[config.device_id] = config.hardware_id

    def remove_device(self, hardware_id: str) -> None:
        """Forget a device that is no longer configured."""
        gone = self.devices.pop(hardware_id, None)
        self.states.pop(hardware_id, None)
        if gone is not None and gone.device_id is not None:
            self._by_device_id.pop(gone.device_id, None)
        self._filters_of.pop(hardware_id, None)
        self._readings.pop(hardware_id, None)
        for topic in dict.fromkeys(self._topics_of.pop(hardware_id, [])):
            kept = [t for t in self.state_topics[topic] if t.hardware_id != hardware_id]
            if kept:
                self.state_topics[topic] = kept
            else:
                del self.state_topics[topic]

    def replace_device(self, config: DeviceConfig) -> None:
        """Take a reconfigured device's new settings; what it reported so far is kept."""
        state = self.states.get(config.hardware_id)
        self.remove_device(config.hardware_id)
        self.add_device(config)
        if state is not None:
            self.states[config.hardware_id] = state
            for relay in [r for r in state.relays if r > config.relays]:
                del state.relays[relay]

    def device(self, device_ref: str) -> DeviceConfig:
        """Return a device by hardware id or HA device id."""
        config = self.devices.get(device_ref)
        if config is None and device_ref in self._by_device_id:
            config = self.devices.get(self._by_device_id[device_ref])
        if config is None:
            raise UnknownDeviceError(f"no configured device {device_ref!r}")
        return config

    def set_device_id(self, hardware_id: str, device_id: str) -> None:
        """Remember the HA device registry id of a device."""
        config = self.devices[hardware_id]
        if config.device_id is not None:
            self._by_device_id.pop(config.device_id, None)
        self.devices[hardware_id] = replace(config, device_id=device_id)
        self._by_device_id[device_id] = hardware_id

    def subscription_filters(self) -> list[str]:
        """Filters covering every topic of the devices (and the discoverable types' availability).

        Ids (``WILDCARD_PLACEHOLDERS``) become ``+``, so devices of one built-in type share
        filters; settings such as a topic prefix or a friendly name are filled in per device.
        """
        self._bridge_topics = bridge_topics(self.devices.values())
        filters: dict[str, None] = dict.fromkeys(self._bridge_topics)
        for dtype in DEVICE_TYPES.values():
            if dtype.discoverable:
                filters[filter_for(dtype.availability_topic, {})] = None
        for device_filters in self._filters_of.values():
            filters.update(device_filters)
        return list(filters)

    # ---- listeners -----------------------------------------------------------------------

    def add_device_listener(
        self, listener: DeviceListener, hardware_id: str | None = None
    ) -> CALLBACK_TYPE:
        """Call ``listener(config, state)`` when a device (``hardware_id``, or any) reports."""
        if hardware_id is None:
            return self._device_listeners.add(listener)
        return self._hardware_listeners.add(hardware_id, listener)

    def notify_device(self, config: DeviceConfig) -> None:
        """Tell the device listeners what ``config``'s device reports now."""
        state = self.states[config.hardware_id]
        for listener in self._device_listeners.snapshot():
            listener(config, state)
        for listener in self._hardware_listeners.snapshot(config.hardware_id):
            listener(config, state)

    # ---- state messages ------------------------------------------------------------------

    def take_state(self, state_topics: list[StateTopic], payload: str) -> StateReport | None:
        """Store what a state message reports (every state it carries).

        Return its device when it reported something, and whether its availability changed.
        """
        hardware_id = state_topics[0].hardware_id
        config = self.devices[hardware_id]
        state = self.states[hardware_id]
        was_online = state.online
        changed = [t for t in state_topics if self._apply_state(config, state, t, payload)]
        if not changed:
            return None
        availability = any(t.kind == "availability" for t in changed)
        return StateReport(
            config,
            went_offline=availability and state.online is False,
            came_online=availability and state.online is True and was_online is not True,
        )

    def _apply_state(
        self, config: DeviceConfig, state: DeviceState, state_topic: StateTopic, payload: str
    ) -> bool:
        """Update ``state`` from one message (parsed by the core); False when it says nothing."""
        dtype = config.device_type
        if state_topic.kind == "availability":
            reading = read_state(dtype.availability_readings, payload)
            if reading is None or reading.value is None:
                return False
            online = reading.value
            if state.online is not online:
                # Once per change, not per message: the entities become (un)available with it.
                _LOGGER.info(
                    "%s (%s) is %s",
                    config.name,
                    config.hardware_id,
                    "online" if online else "offline",
                )
            state.online = online
            return True
        relay = state_topic.relay
        of_device = self._readings.get(config.hardware_id)
        if of_device is None:
            of_device = self._readings[config.hardware_id] = {}
        filled = of_device.get(relay)
        if filled is None:
            readings = dtype.lock_readings if relay is None else dtype.relay_readings
            filled = of_device[relay] = config.readings(readings, relay)
        reading = read_state(filled, payload)
        if reading is None:
            return False
        if relay is None:
            state.locked = reading.value
        elif reading.value is None:
            state.relays.pop(relay, None)
        else:
            state.relays[relay] = reading.value
        return True

    def take_confirmed_state(self, record: CommandRecord) -> bool:
        """The device confirmed a command that sets a state: that state is what it reports now.

        A result (WLTE ``SUCCESS``) may arrive before the relay's state message; the entity
        redrawn for the completed command must not show the old state once more in between.
        Return whether the state changed.
        """
        state = self.states[record.hardware_id]
        if record.relay is not None and record.command in ("ON", "OFF"):
            on = record.command == "ON"
            changed = state.relays.get(record.relay) is not on
            state.relays[record.relay] = on
            return changed
        if record.relay is None and record.command in ("lock", "unlock"):
            locked = record.command == "lock"
            changed = state.locked is not locked
            state.locked = locked
            return changed
        return False

    # ---- discovery -----------------------------------------------------------------------

    def maybe_discovered(self, topic: str, payload: str) -> None:
        """Take a bridge's device list, or offer an unconfigured device that says online."""
        base = self._bridge_topics.get(topic)
        if base is not None:
            self.zigbee2mqtt[base] = parse_bridge_devices(payload)
            return
        if not self.discovery_listeners:
            return
        for dtype in DEVICE_TYPES.values():
            if not dtype.discoverable:
                continue
            prefix, _, suffix = dtype.availability_topic.partition("{mqtt_id}")
            if not (topic.startswith(prefix) and topic.endswith(suffix)):
                continue  # checked first: most messages here are answers, not availability
            reading = read_state(dtype.availability_readings, payload)
            if reading is None or reading.value is not True:
                continue
            if len(topic) > len(prefix) + len(suffix):
                mqtt_id = topic[len(prefix) : len(topic) - len(suffix)]
                if "/" not in mqtt_id and mqtt_id not in self.devices:
                    for listener in self.discovery_listeners.snapshot():
                        listener(dtype, mqtt_id)
