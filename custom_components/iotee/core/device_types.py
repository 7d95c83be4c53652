"""Device types as data: per command the topic, the payload and how the device confirms it.

Topic and payload templates may use ``{mqtt_id}`` (the device's id in its topics: the hardware id,
or the Tasmota topic), ``{relay}``, ``{command_id}`` and ``{action}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class CommandKind(StrEnum):
    """What a command acts on."""

    LOCK = "lock"
    RELAY = "relay"
    REBOOT = "reboot"


@dataclass(frozen=True, slots=True)
class SequenceConfirmation:
    """Confirmed by payloads seen in order on a topic after the publish.

    Every payload but the last acknowledges the command; the last completes it. A single payload is
    "the state equals the target".
    """

    topic: str
    payloads: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResultConfirmation:
    """Confirmed by a JSON result ``{"id", "status", "reason"}`` naming the command id."""

    topic: str


type Confirmation = SequenceConfirmation | ResultConfirmation


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """How one command is sent and confirmed."""

    name: str
    kind: CommandKind
    topic: str
    payload: str
    confirmation: Confirmation
    lock_state: str | None = None
    """For lock commands: the lock state the device reports once done ("1" locked)."""


@dataclass(frozen=True, slots=True)
class DeviceType:
    """A family of devices speaking one MQTT contract."""

    name: str
    commands: Mapping[str, CommandSpec]
    availability_topic: str
    payload_online: str
    payload_offline: str
    has_relays: bool = False
    lock_state_topic: str | None = None
    payload_locked: str = "1"
    payload_unlocked: str = "0"
    relay_state_topic: str | None = None
    payload_on: str = "ON"
    payload_off: str = "OFF"
    discoverable: bool = False
    relay_commands: tuple[str, ...] = field(default=())

    @property
    def has_lock(self) -> bool:
        """Return True when the device itself is a lock."""
        return any(spec.kind is CommandKind.LOCK for spec in self.commands.values())

    @property
    def can_reboot(self) -> bool:
        """Return True when the device can be rebooted."""
        return any(spec.kind is CommandKind.REBOOT for spec in self.commands.values())

    def command(self, name: str) -> CommandSpec | None:
        """Return the spec of ``name`` (case-insensitive), or None when unsupported."""
        return (
            self.commands.get(name)
            or self.commands.get(name.upper())
            or (self.commands.get(name.lower()))
        )


def render(template: str, **values: object) -> str:
    """Fill a topic or payload template."""
    return template.format(**values)


def _relay_command(name: str, topic: str, payload: str, confirm: Confirmation) -> CommandSpec:
    return CommandSpec(name, CommandKind.RELAY, topic, payload, confirm)


IOTEE_DEVICE = DeviceType(
    name="iotee_device",
    commands={
        "lock": CommandSpec(
            "lock",
            CommandKind.LOCK,
            "iotee/dev/{mqtt_id}/rls",
            "1",
            SequenceConfirmation("iotee/dev/{mqtt_id}/rls/state", ("1",)),
            lock_state="1",
        ),
        "unlock": CommandSpec(
            "unlock",
            CommandKind.LOCK,
            "iotee/dev/{mqtt_id}/rls",
            "0",
            SequenceConfirmation("iotee/dev/{mqtt_id}/rls/state", ("0",)),
            lock_state="0",
        ),
        "reboot": CommandSpec(
            "reboot",
            CommandKind.REBOOT,
            "iotee/dev/{mqtt_id}/rbt",
            "1",
            SequenceConfirmation("iotee/dev/{mqtt_id}/status", ("offline", "online")),
        ),
    },
    availability_topic="iotee/dev/{mqtt_id}/status",
    payload_online="online",
    payload_offline="offline",
    lock_state_topic="iotee/dev/{mqtt_id}/rls/state",
    discoverable=True,
)

_WLTE_SET = "wlte/{mqtt_id}/relay/{relay}/set"
_WLTE_RESULT = ResultConfirmation("wlte/{mqtt_id}/relay/{relay}/result")
_WLTE_PAYLOAD = '{{"id": "{command_id}", "action": "{action}"}}'

WLTE_RELAY = DeviceType(
    name="wlte_relay",
    commands={
        action: _relay_command(action, _WLTE_SET, _WLTE_PAYLOAD, _WLTE_RESULT)
        for action in ("ON", "OFF", "JOG")
    },
    availability_topic="wlte/{mqtt_id}/status",
    payload_online="online",
    payload_offline="offline",
    has_relays=True,
    relay_state_topic="wlte/{mqtt_id}/relay/{relay}/state",
    discoverable=True,
    relay_commands=("ON", "OFF", "JOG"),
)

_TASMOTA_CMND = "cmnd/{mqtt_id}/POWER{relay}"
_TASMOTA_STAT = "stat/{mqtt_id}/POWER{relay}"

TASMOTA = DeviceType(
    name="tasmota",
    commands={
        "ON": _relay_command(
            "ON", _TASMOTA_CMND, "ON", SequenceConfirmation(_TASMOTA_STAT, ("ON",))
        ),
        "OFF": _relay_command(
            "OFF", _TASMOTA_CMND, "OFF", SequenceConfirmation(_TASMOTA_STAT, ("OFF",))
        ),
        "JOG": _relay_command(
            "JOG", _TASMOTA_CMND, "ON", SequenceConfirmation(_TASMOTA_STAT, ("ON", "OFF"))
        ),
        "reboot": CommandSpec(
            "reboot",
            CommandKind.REBOOT,
            "cmnd/{mqtt_id}/Restart",
            "1",
            SequenceConfirmation("tele/{mqtt_id}/LWT", ("Offline", "Online")),
        ),
    },
    availability_topic="tele/{mqtt_id}/LWT",
    payload_online="Online",
    payload_offline="Offline",
    has_relays=True,
    relay_state_topic=_TASMOTA_STAT,
    relay_commands=("ON", "OFF", "JOG"),
)

DEVICE_TYPES: dict[str, DeviceType] = {dt.name: dt for dt in (IOTEE_DEVICE, WLTE_RELAY, TASMOTA)}
