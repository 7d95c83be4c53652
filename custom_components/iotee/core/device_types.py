"""Device types as data: per command the topic, the payload and how the device confirms it.

Topic and payload templates may use these placeholders:

- ``{mqtt_id}``: the device's id in its topics (the hardware id, or the Tasmota topic);
- ``{relay}``: the IoTee relay number (1..N); ``{relay0}``: the same counted from 0 (Shelly);
- ``{relay_key}``: the relay's own name on the device (a Zigbee2MQTT state property such as
  ``state_l2``, an ESPHome switch object id), see ``DeviceType.relay_key``;
- ``{command_id}`` and ``{action}`` (payloads and result topics);
- the device's settings named in ``DeviceType.settings`` (``{topic_prefix}``, ``{base_topic}``,
  ``{friendly_name}``, ``{src}``, ``{object_id}``, ``{jog_seconds}``).

Subscriptions cover a topic template with ``+`` for every level that holds one of
``WILDCARD_PLACEHOLDERS`` (ids that never contain a ``/``); the device settings are filled in, so a
Zigbee2MQTT friendly name or an ESPHome prefix may span several levels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
import functools

WILDCARD_PLACEHOLDERS = ("{mqtt_id}", "{relay}", "{relay0}", "{relay_key}", "{command_id}")
"""Placeholders a subscription covers with ``+``: one level each, never a ``/`` inside."""


class CommandKind(StrEnum):
    """What a command acts on."""

    LOCK = "lock"
    RELAY = "relay"
    REBOOT = "reboot"


@dataclass(frozen=True, slots=True)
class SequenceConfirmation:
    """Confirmed by values seen in order on a topic after the publish.

    Every value but the last acknowledges the command; the last completes it. A single value is
    "the state equals the target". With ``path`` the value is that field of a JSON object (a
    dotted path, e.g. ``state_l2``); other fields of the message say nothing. A value in
    ``failures`` (read at ``failure_path``, else at ``path``) ends the command ``failed``: the
    device reported it could not do it (an ESPHome lock ``JAMMED``).
    """

    topic: str
    payloads: tuple[str, ...]
    path: str | None = None
    failures: tuple[str, ...] = ()
    failure_path: str | None = None


@dataclass(frozen=True, slots=True)
class ResultConfirmation:
    """Confirmed by a JSON result naming the command id in ``id_field``.

    The value of ``status_field`` (compared without regard to case) acknowledges, completes,
    fails (``device_failed``) or rejects (``rejected``) the command; ``reason_field`` carries the
    device's reason. The defaults are the WLTE contract ``{"id", "status", "reason"}``.
    """

    topic: str
    id_field: str = "id"
    status_field: str = "status"
    ack: tuple[str, ...] = ("ACK",)
    success: tuple[str, ...] = ("SUCCESS",)
    failure: tuple[str, ...] = ("FAILED",)
    rejected: tuple[str, ...] = ("REJECTED",)
    reason_field: str = "reason"


@dataclass(frozen=True, slots=True)
class RpcConfirmation:
    """Confirmed by a JSON-RPC 2.0 response frame with the command id as its ``id``.

    A frame with ``result`` completes the command; one with ``error`` fails it with the device's
    ``error.message`` (Shelly Gen2+).
    """

    topic: str


@dataclass(frozen=True, slots=True)
class NoConfirmation:
    """The device never confirms (a user-defined device that only listens): a command ends
    ``published`` once HA's MQTT client has handed it to the broker, and says so plainly."""

    topic: str = ""


type Confirmation = SequenceConfirmation | ResultConfirmation | RpcConfirmation | NoConfirmation


@dataclass(frozen=True, slots=True)
class StateValue:
    """How to read a true/false state (online, locked, relay on) from one message.

    ``path`` None compares the whole (stripped) payload; otherwise the payload must be a JSON
    object and the value is read at the dotted path (``true``/``false`` and numbers as JSON writes
    them). ``unknown`` values set the state to unknown (a jammed lock). With ``accept_plain`` a
    payload that is not a JSON object is compared whole (Zigbee2MQTT's legacy availability).
    """

    true_values: tuple[str, ...]
    false_values: tuple[str, ...]
    path: str | None = None
    unknown: tuple[str, ...] = ()
    accept_plain: bool = False


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A second publish IoTee makes itself, ``after`` seconds after the command's publish.

    A JOG done by IoTee for a device without a pulse of its own: the ON payload, then the OFF
    payload (a template like the command's) once the relay has been closed for ``after`` s.
    """

    payload: str
    after: float


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
    follow_up: FollowUp | None = None
    """A second publish IoTee makes on the same topic (JOG as ON, then OFF)."""


@dataclass(frozen=True, slots=True)
class StateRequest:
    """How to ask a device for its state when its firmware retains none.

    With ``field`` (Zigbee2MQTT's ``<base>/<friendly_name>/get``): one JSON object naming
    ``field`` (a template; one per relay on a relay device) with empty values. Without
    (Tasmota, where a command without a payload returns the current setting): one empty
    message on ``topic`` per relay (a template with ``{relay}``).
    """

    topic: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceType:
    """A family of devices speaking one MQTT contract."""

    name: str
    """The family's key (stored with devices and commands, ``model_id`` in the device registry)."""
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
    availability_values: tuple[StateValue, ...] = ()
    """How availability reads; empty: the payload equals ``payload_online``/``payload_offline``."""
    state_request: StateRequest | None = None
    """Asked once subscribed, for firmware that retains no state (Zigbee2MQTT)."""
    lock_values: tuple[StateValue, ...] = ()
    """How the lock state reads; the first whose field is in the message decides."""
    relay_values: tuple[StateValue, ...] = ()
    """How a relay state reads; its ``path`` may use ``{relay_key}``."""
    settings: tuple[str, ...] = ()
    """The per-device settings the templates use (asked for when the device is added)."""
    defaults: Mapping[str, str] = field(default_factory=dict)
    """Default values of settings; ``{hardware_id}`` is filled with the device's hardware id."""
    relay_keys: bool = False
    """True when each relay has its own name on the device (``{relay_key}``)."""
    relay_key_single: str = ""
    """The relay name when the device has one relay (Zigbee2MQTT: ``state``)."""
    relay_key_pattern: str = ""
    """The default name of relay ``{relay}`` when the device has several (``state_l{relay}``)."""
    max_relays: int = 32
    model: str = ""
    """The family's name for people: the model Home Assistant's device registry shows."""

    @property
    def has_lock(self) -> bool:
        """Return True when the device itself is a lock."""
        return any(spec.kind is CommandKind.LOCK for spec in self.commands.values())

    @property
    def can_reboot(self) -> bool:
        """Return True when the device can be rebooted."""
        return any(spec.kind is CommandKind.REBOOT for spec in self.commands.values())

    @property
    def availability_readings(self) -> tuple[StateValue, ...]:
        """Return how availability reads."""
        return self.availability_values or (
            StateValue((self.payload_online,), (self.payload_offline,)),
        )

    @property
    def lock_readings(self) -> tuple[StateValue, ...]:
        """Return how the lock state reads."""
        return self.lock_values or (StateValue((self.payload_locked,), (self.payload_unlocked,)),)

    @property
    def relay_readings(self) -> tuple[StateValue, ...]:
        """Return how a relay state reads."""
        return self.relay_values or (StateValue((self.payload_on,), (self.payload_off,)),)

    def command(self, name: str) -> CommandSpec | None:
        """Return the spec of ``name`` (case-insensitive), or None when unsupported."""
        return (
            self.commands.get(name)
            or self.commands.get(name.upper())
            or (self.commands.get(name.lower()))
        )

    def relay_key(self, relay: int, relays: int) -> str:
        """Return the default device-side name of ``relay`` on a device with ``relays`` relays."""
        if relays == 1 and self.relay_key_single:
            return self.relay_key_single
        return self.relay_key_pattern.format(relay=relay)

    def default_settings(self, hardware_id: str) -> dict[str, str]:
        """Return the default settings of a device with ``hardware_id``."""
        return {
            name: value.format(hardware_id=hardware_id) for name, value in self.defaults.items()
        }


def render(template: str, **values: object) -> str:
    """Fill a topic or payload template."""
    return template.format(**values)


def topic_filter(template: str, values: Mapping[str, object]) -> str:
    """Return the subscription covering ``template`` for a device with setting ``values``.

    Levels holding one of ``WILDCARD_PLACEHOLDERS`` become ``+``; the others are filled in.
    """
    constant = _constant_filter(template)
    if constant is not None:  # a built-in type's topic: the same filter for every device
        return constant
    return "/".join(
        level if filled is None else filled.format(**values)
        for level, filled in _filter_levels(template)
    )


@functools.cache
def _constant_filter(template: str) -> str | None:
    """Return the filter of a template with no level to fill in (None if it has one)."""
    levels = _filter_levels(template)
    if any(filled is not None for _, filled in levels):
        return None
    return "/".join(level for level, _ in levels)


@functools.cache
def _filter_levels(template: str) -> tuple[tuple[str, str | None], ...]:
    """Split a topic template into levels: ``(text, None)`` taken as it is (``+`` for a level
    holding a wildcard placeholder), ``("", template)`` filled in per device."""
    levels: list[tuple[str, str | None]] = []
    for level in template.split("/"):
        if any(name in level for name in WILDCARD_PLACEHOLDERS):
            levels.append(("+", None))
        elif "{" in level or "}" in level:
            levels.append(("", level))
        else:
            levels.append((level, None))
    return tuple(levels)


def _relay_command(name: str, topic: str, payload: str, confirm: Confirmation) -> CommandSpec:
    return CommandSpec(name, CommandKind.RELAY, topic, payload, confirm)


IOTEE_DEVICE = DeviceType(
    name="iotee_device",
    model="IoTee lock controller",
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
    model="WLTE relay controller",
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
    model="Tasmota relay",
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
    # ``stat`` is not retained (``PowerRetain`` off by default): ask each relay once at start.
    state_request=StateRequest(_TASMOTA_CMND),
    relay_commands=("ON", "OFF", "JOG"),
)

# ---- Shelly Gen2+ (Plus, Pro, Gen3, Gen4): JSON-RPC over MQTT --------------------------------
# IoTee relay n is the Shelly switch component n - 1 (``switch:0`` is relay 1).

_SHELLY_RPC = "{topic_prefix}/rpc"
_SHELLY_ANSWER = RpcConfirmation("{src}/rpc")
_SHELLY_FRAME = '{{"id": "{command_id}", "src": "{src}", "method": "{method}", "params": {params}}}'


def _shelly_frame(method: str, params: str) -> str:
    """Return a JSON-RPC request frame template (``params`` is itself a template)."""
    return _SHELLY_FRAME.replace("{method}", method).replace("{params}", params)


SHELLY_GEN2 = DeviceType(
    name="shelly_gen2",
    model="Shelly Gen2+ relay",
    commands={
        "ON": _relay_command(
            "ON",
            _SHELLY_RPC,
            _shelly_frame("Switch.Set", '{{"id": {relay0}, "on": true}}'),
            _SHELLY_ANSWER,
        ),
        "OFF": _relay_command(
            "OFF",
            _SHELLY_RPC,
            _shelly_frame("Switch.Set", '{{"id": {relay0}, "on": false}}'),
            _SHELLY_ANSWER,
        ),
        "JOG": _relay_command(
            "JOG",
            _SHELLY_RPC,
            _shelly_frame(
                "Switch.Set", '{{"id": {relay0}, "on": true, "toggle_after": {jog_seconds}}}'
            ),
            _SHELLY_ANSWER,
        ),
        "reboot": CommandSpec(
            "reboot",
            CommandKind.REBOOT,
            _SHELLY_RPC,
            _shelly_frame("Shelly.Reboot", "{{}}"),
            _SHELLY_ANSWER,
        ),
    },
    availability_topic="{topic_prefix}/online",
    payload_online="true",
    payload_offline="false",
    has_relays=True,
    relay_state_topic="{topic_prefix}/status/switch:{relay0}",
    relay_values=(StateValue(("true",), ("false",), path="output"),),
    relay_commands=("ON", "OFF", "JOG"),
    settings=("topic_prefix", "src", "jog_seconds"),
    defaults={"topic_prefix": "{hardware_id}", "src": "iotee-{hardware_id}", "jog_seconds": "1"},
)

# ---- Zigbee2MQTT: JSON on <base_topic>/<friendly_name> -----------------------------------------

_Z2M_SET = "{base_topic}/{friendly_name}/set"
_Z2M_STATE = "{base_topic}/{friendly_name}"
_Z2M_AVAILABILITY = "{base_topic}/{friendly_name}/availability"
_Z2M_ONLINE = (StateValue(("online",), ("offline",), path="state", accept_plain=True),)
_Z2M_SETTINGS = ("base_topic", "friendly_name")
_Z2M_DEFAULTS = {"base_topic": "zigbee2mqtt", "friendly_name": "{hardware_id}"}
Z2M_LOCK_FAILURES = ("not_fully_locked",)
"""``lock_state`` values that end a lock or unlock ``failed`` (the bolt did not go home)."""

ZIGBEE2MQTT_LOCK = DeviceType(
    name="zigbee2mqtt_lock",
    model="Zigbee2MQTT lock",
    commands={
        name: CommandSpec(
            name,
            CommandKind.LOCK,
            _Z2M_SET,
            f'{{{{"state": "{target}"}}}}',
            SequenceConfirmation(
                _Z2M_STATE,
                (target,),
                path="state",
                failures=Z2M_LOCK_FAILURES,
                failure_path="lock_state",
            ),
        )
        for name, target in (("lock", "LOCK"), ("unlock", "UNLOCK"))
    },
    availability_topic=_Z2M_AVAILABILITY,
    payload_online="online",
    payload_offline="offline",
    availability_values=_Z2M_ONLINE,
    lock_state_topic=_Z2M_STATE,
    state_request=StateRequest(_Z2M_STATE + "/get", "state"),
    lock_values=(
        StateValue(("locked",), ("unlocked",), path="lock_state", unknown=Z2M_LOCK_FAILURES),
        StateValue(("LOCK",), ("UNLOCK",), path="state"),
    ),
    settings=_Z2M_SETTINGS,
    defaults=_Z2M_DEFAULTS,
)

ZIGBEE2MQTT_SWITCH = DeviceType(
    name="zigbee2mqtt_switch",
    model="Zigbee2MQTT switch",
    commands={
        action: _relay_command(
            action,
            _Z2M_SET,
            f'{{{{"{{relay_key}}": "{action}"}}}}',
            SequenceConfirmation(_Z2M_STATE, (action,), path="{relay_key}"),
        )
        for action in ("ON", "OFF")
    },
    availability_topic=_Z2M_AVAILABILITY,
    payload_online="online",
    payload_offline="offline",
    availability_values=_Z2M_ONLINE,
    has_relays=True,
    relay_state_topic=_Z2M_STATE,
    state_request=StateRequest(_Z2M_STATE + "/get", "{relay_key}"),
    relay_values=(StateValue(("ON",), ("OFF",), path="{relay_key}"),),
    relay_commands=("ON", "OFF"),
    settings=_Z2M_SETTINGS,
    defaults=_Z2M_DEFAULTS,
    relay_keys=True,
    relay_key_single="state",
    relay_key_pattern="state_l{relay}",
)

# ---- ESPHome over MQTT (``mqtt:`` instead of the native API) ---------------------------------

_ESPHOME_STATUS = "{topic_prefix}/status"
_ESPHOME_LOCK = "{topic_prefix}/lock/{object_id}"
ESPHOME_LOCK_FAILURES = ("JAMMED",)

ESPHOME_LOCK = DeviceType(
    name="esphome_lock",
    model="ESPHome lock",
    commands={
        name: CommandSpec(
            name,
            CommandKind.LOCK,
            f"{_ESPHOME_LOCK}/command",
            command,
            SequenceConfirmation(
                f"{_ESPHOME_LOCK}/state", (state,), failures=ESPHOME_LOCK_FAILURES
            ),
        )
        for name, command, state in (("lock", "LOCK", "LOCKED"), ("unlock", "UNLOCK", "UNLOCKED"))
    },
    availability_topic=_ESPHOME_STATUS,
    payload_online="online",
    payload_offline="offline",
    lock_state_topic=f"{_ESPHOME_LOCK}/state",
    lock_values=(StateValue(("LOCKED",), ("UNLOCKED",), unknown=ESPHOME_LOCK_FAILURES),),
    settings=("topic_prefix", "object_id"),
    defaults={"topic_prefix": "{hardware_id}", "object_id": "lock"},
)

_ESPHOME_SWITCH = "{topic_prefix}/switch/{relay_key}"

ESPHOME_SWITCH = DeviceType(
    name="esphome_switch",
    model="ESPHome switch",
    commands={
        action: _relay_command(
            action,
            f"{_ESPHOME_SWITCH}/command",
            action,
            SequenceConfirmation(f"{_ESPHOME_SWITCH}/state", (action,)),
        )
        for action in ("ON", "OFF")
    },
    availability_topic=_ESPHOME_STATUS,
    payload_online="online",
    payload_offline="offline",
    has_relays=True,
    relay_state_topic=f"{_ESPHOME_SWITCH}/state",
    relay_commands=("ON", "OFF"),
    settings=("topic_prefix",),
    defaults={"topic_prefix": "{hardware_id}"},
    relay_keys=True,
    relay_key_pattern="relay_{relay}",
)

CUSTOM_TYPE = DeviceType(
    name="custom",
    model="Custom MQTT device",
    commands={},
    availability_topic="",
    payload_online="",
    payload_offline="",
)
"""Stands for "a device the user describes" where a type is named (the type picker, the API);
each such device gets its own DeviceType (``core/custom_device.py``)."""

DEVICE_TYPES: dict[str, DeviceType] = {
    dt.name: dt
    for dt in (
        IOTEE_DEVICE,
        WLTE_RELAY,
        TASMOTA,
        SHELLY_GEN2,
        ZIGBEE2MQTT_LOCK,
        ZIGBEE2MQTT_SWITCH,
        ESPHOME_LOCK,
        ESPHOME_SWITCH,
        CUSTOM_TYPE,
    )
}
