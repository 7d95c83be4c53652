"""A device the user describes: its topics, payloads and how it confirms, as a DeviceType.

The add-device flow stores the description (the keys below) in the device's subentry;
``custom_device_type`` builds the DeviceType the engine uses, so a user-defined device is tracked
exactly like a built-in one. ``check`` returns the translation key of every bad field.

Templates: command topics and payloads may use ``{relay}``, ``{command_id}`` and ``{action}``;
a result topic ``{relay}`` and ``{command_id}``; a state topic and JSON path ``{relay}``. Topics
IoTee publishes to or listens on never contain ``+`` or ``#``.

Confirmation: ``state`` (the state topic, or a field of its JSON, equals the target value; a JOG
is the on value then the off value) or ``result`` (a JSON result naming the command id in
``id_field``; ``status_field`` holds one of the success or failure values) or ``none`` (the
device never answers: a command ends ``published`` once the broker has it, never completed).

JOG: none, the device's own pulse (``payload_jog``), or done by IoTee: the ON payload, then the
OFF payload ``jog_seconds`` later, one command confirmed by the state going on and then off (so
it needs ``state`` confirmation: a result would confirm the first publish alone).
"""

from __future__ import annotations

from collections.abc import Mapping
import re
import string
from typing import Any

from .device_types import (
    CUSTOM_TYPE,
    CommandKind,
    CommandSpec,
    Confirmation,
    DeviceType,
    FollowUp,
    NoConfirmation,
    ResultConfirmation,
    SequenceConfirmation,
    StateValue,
)
from .topic_check import topic_error

CUSTOM = CUSTOM_TYPE.name

KIND = "kind"
KIND_LOCK = "lock"
KIND_RELAYS = "relays"
COMMAND_TOPIC = "command_topic"
CONFIRM = "confirm"
CONFIRM_STATE = "state"
CONFIRM_RESULT = "result"
CONFIRM_NONE = "none"
AVAILABILITY_TOPIC = "availability_topic"
PAYLOAD_ONLINE = "payload_online"
PAYLOAD_OFFLINE = "payload_offline"
PAYLOAD_LOCK = "payload_lock"
PAYLOAD_UNLOCK = "payload_unlock"
PAYLOAD_ON = "payload_on"
PAYLOAD_OFF = "payload_off"
PAYLOAD_JOG = "payload_jog"
JOG = "jog"
JOG_NONE = "none"
JOG_DEVICE = "device"
JOG_IOTEE = "iotee"
JOG_SECONDS = "jog_seconds"
MIN_JOG_SECONDS = 0.1
MAX_JOG_SECONDS = 3600.0
STATE_TOPIC = "state_topic"
STATE_PATH = "state_path"
VALUE_ON = "value_on"
VALUE_OFF = "value_off"
RESULT_TOPIC = "result_topic"
ID_FIELD = "id_field"
STATUS_FIELD = "status_field"
SUCCESS_VALUES = "success_values"
FAILURE_VALUES = "failure_values"
REASON_FIELD = "reason_field"

COMMAND_PLACEHOLDERS = frozenset({"relay", "command_id", "action"})
RESULT_PLACEHOLDERS = frozenset({"relay", "command_id"})
STATE_PLACEHOLDERS = frozenset({"relay"})
MAX_PAYLOAD = 1024
MAX_VALUE = 100
PATH_PATTERN = re.compile(r"^[A-Za-z0-9_\-{}]+(\.[A-Za-z0-9_\-{}]+)*$")

ERROR_TEMPLATE = "invalid_template"
ERROR_TOPIC = "invalid_topic"
ERROR_PAYLOAD = "invalid_payload"
ERROR_VALUE = "invalid_value"
ERROR_SAME_VALUES = "same_values"
ERROR_PATH = "invalid_path"
ERROR_VALUES = "invalid_values"
ERROR_JOG_SECONDS = "invalid_jog_seconds"
ERROR_JOG_NEEDS_STATE = "jog_needs_state"

_SAMPLE = {"relay": 1, "command_id": "0123456789abcdef", "action": "ON"}


def placeholders(template: str) -> set[str] | None:
    """Return the placeholder names of ``template``; None when it is not a valid template."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    names: set[str] = set()
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            return None
        names.add(name)
    return names


def template_error(template: str, allowed: frozenset[str]) -> str | None:
    """Return why ``template`` cannot be used (unknown placeholder, broken braces)."""
    names = placeholders(template)
    if names is None or not names <= allowed:
        return ERROR_TEMPLATE
    return None


def topic_template_error(template: str, allowed: frozenset[str]) -> str | None:
    """Return why a topic template cannot be used; filled, it must be a topic without wildcards."""
    error = template_error(template, allowed)
    if error is not None:
        return error
    return topic_error(template.format(**_SAMPLE))


def values_list(text: str) -> tuple[str, ...]:
    """Parse "ok, done" into its values."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def check(data: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, str]:
    """Return ``{field: error key}`` for the bad ones among ``fields`` of ``data``."""
    errors: dict[str, str] = {}
    for name in fields:
        error = _field_error(name, str(data.get(name, "")), data)
        if error is not None:
            errors[name] = error
    for low, high in ((VALUE_ON, VALUE_OFF), (PAYLOAD_ONLINE, PAYLOAD_OFFLINE)):
        checked = {low, high} <= set(fields) and not {low, high} & set(errors)
        if checked and str(data.get(low, "")).strip() == str(data.get(high, "")).strip():
            errors[high] = ERROR_SAME_VALUES
    return errors


def _field_error(name: str, value: str, data: Mapping[str, Any]) -> str | None:
    value = value.strip()
    if name == COMMAND_TOPIC:
        return topic_template_error(value, COMMAND_PLACEHOLDERS)
    if name == RESULT_TOPIC:
        return topic_template_error(value, RESULT_PLACEHOLDERS)
    if name == STATE_TOPIC:
        return topic_template_error(value, STATE_PLACEHOLDERS)
    if name == AVAILABILITY_TOPIC:
        return None if not value else topic_template_error(value, frozenset())
    if name in (PAYLOAD_LOCK, PAYLOAD_UNLOCK, PAYLOAD_ON, PAYLOAD_OFF, PAYLOAD_JOG):
        if name == PAYLOAD_JOG and data.get(JOG) != JOG_DEVICE:
            return None
        if not 1 <= len(value) <= MAX_PAYLOAD:
            return ERROR_PAYLOAD
        return template_error(value, COMMAND_PLACEHOLDERS)
    if name in (STATE_PATH, REASON_FIELD):
        return None if not value else _path_error(value, name == STATE_PATH)
    if name in (ID_FIELD, STATUS_FIELD):
        return _path_error(value, False)
    if name in (VALUE_ON, VALUE_OFF, PAYLOAD_ONLINE, PAYLOAD_OFFLINE):
        return None if 1 <= len(value) <= MAX_VALUE else ERROR_VALUE
    if name == SUCCESS_VALUES:
        return None if values_list(value) else ERROR_VALUES
    if name == JOG and value == JOG_IOTEE and data.get(CONFIRM) == CONFIRM_RESULT:
        return ERROR_JOG_NEEDS_STATE
    if name == JOG_SECONDS:
        return None if data.get(JOG) != JOG_IOTEE or _jog_seconds(value) else ERROR_JOG_SECONDS
    return None


def _jog_seconds(value: object) -> float | None:
    """Return the JOG duration ``value`` gives, or None when it is not one."""
    try:
        seconds = float(str(value).strip())
    except ValueError:
        return None
    return seconds if MIN_JOG_SECONDS <= seconds <= MAX_JOG_SECONDS else None


def _path_error(value: str, relay_allowed: bool) -> str | None:
    if not PATH_PATTERN.match(value):
        return ERROR_PATH
    return template_error(value, STATE_PLACEHOLDERS if relay_allowed else frozenset())


def _text(data: Mapping[str, Any], key: str, default: str = "") -> str:
    return str(data.get(key, default)).strip()


def custom_device_type(data: Mapping[str, Any]) -> DeviceType:
    """Build the DeviceType a user-defined device's stored description says."""
    is_lock = data.get(KIND) == KIND_LOCK
    by_state = data.get(CONFIRM) == CONFIRM_STATE
    state_topic = _text(data, STATE_TOPIC) if by_state else ""
    path = _text(data, STATE_PATH) or None
    value_on, value_off = _text(data, VALUE_ON), _text(data, VALUE_OFF)

    def confirmation(*values: str) -> Confirmation:
        if data.get(CONFIRM) == CONFIRM_NONE:
            return NoConfirmation()
        if by_state:
            return SequenceConfirmation(state_topic, values, path=path)
        return ResultConfirmation(
            _text(data, RESULT_TOPIC),
            id_field=_text(data, ID_FIELD, "id"),
            status_field=_text(data, STATUS_FIELD, "status"),
            ack=(),
            success=values_list(_text(data, SUCCESS_VALUES)),
            failure=values_list(_text(data, FAILURE_VALUES)),
            rejected=(),
            reason_field=_text(data, REASON_FIELD) or "reason",
        )

    topic = _text(data, COMMAND_TOPIC)
    kind = CommandKind.LOCK if is_lock else CommandKind.RELAY
    actions: list[tuple[str, str, tuple[str, ...]]] = (
        [("lock", PAYLOAD_LOCK, (value_on,)), ("unlock", PAYLOAD_UNLOCK, (value_off,))]
        if is_lock
        else [("ON", PAYLOAD_ON, (value_on,)), ("OFF", PAYLOAD_OFF, (value_off,))]
    )
    if not is_lock and data.get(JOG) == JOG_DEVICE:
        actions.append(("JOG", PAYLOAD_JOG, (value_on, value_off)))
    commands = {
        name: CommandSpec(name, kind, topic, _text(data, key), confirmation(*values))
        for name, key, values in actions
    }
    seconds = _jog_seconds(data.get(JOG_SECONDS, ""))
    if not is_lock and data.get(JOG) == JOG_IOTEE and seconds is not None:
        commands["JOG"] = CommandSpec(
            "JOG",
            kind,
            topic,
            _text(data, PAYLOAD_ON),
            confirmation(value_on, value_off),
            follow_up=FollowUp(_text(data, PAYLOAD_OFF), seconds),
        )
    reading = (StateValue((value_on,), (value_off,), path=path),) if state_topic else ()
    return DeviceType(
        name=CUSTOM,
        model="Custom MQTT lock" if is_lock else "Custom MQTT relays",
        commands=commands,
        availability_topic=_text(data, AVAILABILITY_TOPIC),
        payload_online=_text(data, PAYLOAD_ONLINE, "online"),
        payload_offline=_text(data, PAYLOAD_OFFLINE, "offline"),
        has_relays=not is_lock,
        lock_state_topic=(state_topic or None) if is_lock else None,
        lock_values=reading if is_lock else (),
        relay_state_topic=None if is_lock or not state_topic else state_topic,
        relay_values=() if is_lock else reading,
        relay_commands=() if is_lock else tuple(commands),
    )
