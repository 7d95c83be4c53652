"""A configured device and what is known of its live state."""

from __future__ import annotations

from dataclasses import dataclass, field

from .device_types import DeviceType


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

    def topic(self, template: str, relay: int | None = None) -> str:
        """Render one of this device's topic templates."""
        return template.format(mqtt_id=self.topic_id, relay="" if relay is None else relay)


@dataclass(slots=True)
class DeviceState:
    """Live state reported by the device over MQTT; None while unknown."""

    online: bool | None = None
    locked: bool | None = None
    relays: dict[int, bool] = field(default_factory=dict)
