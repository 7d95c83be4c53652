"""What a device's state message says: online, locked, relay on — or nothing.

Each reading (``StateValue``) names where the value is (the whole payload or a JSON field) and
which values mean true, false or unknown. Readings are tried in order; the first whose field is
in the message decides, so a Zigbee2MQTT lock reads ``lock_state`` when the message has it and
``state`` otherwise. A message none of them understands changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .device_types import StateValue
from .matcher import message_value, parse_result


@dataclass(frozen=True, slots=True)
class Reading:
    """A state read from a message: True, False, or None for "unknown" (a jammed lock)."""

    value: bool | None


def read_state(readings: tuple[StateValue, ...], payload: str) -> Reading | None:
    """Return what ``payload`` says according to ``readings``; None when it says nothing."""
    data_checked = False
    is_object = False
    for reading in readings:
        path = reading.path
        if path is not None and reading.accept_plain:
            if not data_checked:
                is_object, data_checked = parse_result(payload) is not None, True
            if not is_object:
                path = None
        value = message_value(payload, path)
        if value is None:
            continue
        if value in reading.true_values:
            return Reading(True)
        if value in reading.false_values:
            return Reading(False)
        if value in reading.unknown:
            return Reading(None)
        if reading.path is not None:
            return None  # the field is there with a value we do not know: it decides
    return None
