"""A configured device and what is known of its live state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
import json

from .delivery_rules import DeliveryPolicy
from .device_types import (
    CommandSpec,
    Confirmation,
    DeviceType,
    SequenceConfirmation,
    StateValue,
)


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One device as the user configured it."""

    hardware_id: str
    name: str
    device_type: DeviceType
    relays: int = 0
    mqtt_id: str = ""
    relay_locks: frozenset[int] = frozenset()
    device_id: str | None = None
    """The Home Assistant device registry id, once the device is registered."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """The family's settings (``DeviceType.settings``): topic prefix, friendly name, ..."""
    relay_keys: tuple[str, ...] = ()
    """The device-side name of each relay, in order (empty: the type's default names)."""
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    """Keeping commands while the device is offline, and retrying them (its options)."""
    _values: Mapping[str, object] = field(init=False, repr=False, compare=False)
    """What the templates are filled with, relay aside (built once: every command renders)."""
    _confirmations: dict[tuple[str, int | None], tuple[Confirmation, Confirmation]] = field(
        init=False, repr=False, compare=False
    )
    """Filled-in confirmations by command name and relay, each with the template it was filled
    from (``confirmation``: every command of a target needs the same one)."""

    def __post_init__(self) -> None:
        """Build the template values once."""
        values: dict[str, object] = dict(self.device_type.default_settings(self.hardware_id))
        values.update(self.settings)
        values["mqtt_id"] = self.topic_id
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_confirmations", {})

    def configured_as(self, other: DeviceConfig) -> bool:
        """Whether ``other`` configures the device exactly as this does, its HA device id
        aside (what a setup compares for each of thousands of devices: no copy is built)."""
        return all(getattr(self, name) == getattr(other, name) for name in _SETTING_FIELDS)

    @property
    def topic_id(self) -> str:
        """Return the id used in the device's topics (the Tasmota topic or the hardware id)."""
        return self.mqtt_id or self.hardware_id

    def targets(self) -> list[str]:
        """Return what commands to this device act on, as ``CommandRecord.target`` names them."""
        kinds = {spec.kind.value for spec in self.device_type.commands.values()}
        targets = ["lock"] if "lock" in kinds else []
        if "relay" in kinds:
            targets += [f"relay:{relay}" for relay in range(1, self.relays + 1)]
        if "reboot" in kinds:
            targets.append("reboot")
        return targets

    def relay_key(self, relay: int) -> str:
        """Return the device-side name of ``relay`` (a state property, an object id)."""
        if 1 <= relay <= len(self.relay_keys):
            return self.relay_keys[relay - 1]
        return self.device_type.relay_key(relay, self.relays)

    def values(self, relay: int | None = None) -> dict[str, object]:
        """Return what the templates of this device are filled with (for ``relay``)."""
        values = dict(self._values)
        if relay is None:
            values.update(relay="", relay0="", relay_key="")
        else:
            values.update(relay=relay, relay0=relay - 1, relay_key=self.relay_key(relay))
        return values

    def render(self, template: str, relay: int | None = None, **extra: object) -> str:
        """Render one of this device's topic or payload templates."""
        return template.format(**(self.values(relay) | extra))

    def topic(self, template: str, relay: int | None = None) -> str:
        """Render one of this device's topic templates."""
        return self.render(template, relay)

    def state_requests(self) -> list[tuple[str, str]]:
        """Return the topics and payloads that ask this device for its state, if its firmware
        retains none (Zigbee2MQTT: ``{"state_l1": "", "state_l2": ""}`` on ``.../get``;
        Tasmota: an empty ``cmnd/T/POWER<n>`` per relay); none for the other families."""
        request = self.device_type.state_request
        if request is None:
            return []
        relays: list[int | None] = (
            list(range(1, self.relays + 1)) if self.device_type.has_relays else [None]
        )
        if request.field is None:
            return [(self.topic(request.topic, relay), "") for relay in relays]
        fields = dict.fromkeys((request.field.format(**self.values(r)) for r in relays), "")
        return [(self.topic(request.topic), json.dumps(fields))]

    def confirmation(self, spec: CommandSpec, relay: int | None) -> Confirmation:
        """Return ``spec``'s confirmation with this device's topic and field names filled in.

        Filled in once per command and relay (confirmations are immutable, so every command of
        that target shares it): tracking a command asks for it each time.
        """
        key = (spec.name, relay)
        cached = self._confirmations.get(key)
        if cached is not None and cached[0] is spec.confirmation:
            return cached[1]
        filled = self._fill_confirmation(spec.confirmation, relay)
        self._confirmations[key] = (spec.confirmation, filled)
        return filled

    def _fill_confirmation(self, confirmation: Confirmation, relay: int | None) -> Confirmation:
        values = self.values(relay)
        topic = confirmation.topic.format(**values)
        if isinstance(confirmation, SequenceConfirmation):
            return replace(
                confirmation,
                topic=topic,
                path=_fill(confirmation.path, values),
                failure_path=_fill(confirmation.failure_path, values),
            )
        return replace(confirmation, topic=topic)

    def readings(
        self, readings: tuple[StateValue, ...], relay: int | None
    ) -> tuple[StateValue, ...]:
        """Return state readings with this device's field names filled in."""
        values = self.values(relay)
        return tuple(replace(reading, path=_fill(reading.path, values)) for reading in readings)


_SETTING_FIELDS = tuple(
    item.name for item in fields(DeviceConfig) if item.compare and item.name != "device_id"
)
"""What ``DeviceConfig.configured_as`` compares: every compared field but the HA device id."""


def _fill(template: str | None, values: Mapping[str, object]) -> str | None:
    return None if template is None else template.format(**values)


@dataclass(slots=True)
class DeviceState:
    """Live state reported by the device over MQTT; None while unknown."""

    online: bool | None = None
    locked: bool | None = None
    relays: dict[int, bool] = field(default_factory=dict)
