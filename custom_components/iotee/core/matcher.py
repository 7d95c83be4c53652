"""Confirmation matching: does an MQTT message move a published command forward?

A retained message never confirms anything: the broker sends retained messages to a new
subscriber as old news, while a device's answer to a command reaches existing subscribers live.

JSON messages: only the field that concerns the command counts (a Zigbee2MQTT state names every
relay and sensor of the device; a command to relay 2 reads ``state_l2`` and nothing else), extra
keys are ignored, and a message without that field says nothing about the command.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Any

from .device_types import (
    Confirmation,
    NoConfirmation,
    ResultConfirmation,
    RpcConfirmation,
    SequenceConfirmation,
)
from .model import CommandStatus, ErrorCode

RESULT_STATUSES: dict[str, tuple[CommandStatus, ErrorCode | None]] = {
    "ACK": (CommandStatus.ACKNOWLEDGED, None),
    "SUCCESS": (CommandStatus.COMPLETED, None),
    "FAILED": (CommandStatus.FAILED, ErrorCode.DEVICE_FAILED),
    "REJECTED": (CommandStatus.FAILED, ErrorCode.REJECTED),
}
"""The WLTE result statuses (the defaults of ``ResultConfirmation``)."""

MAX_ERROR_LENGTH = 500
"""A device's error message is kept on the record up to this many characters."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a message means for a command."""

    status: CommandStatus
    error_code: ErrorCode | None = None
    error: str | None = None


def parse_result(payload: str) -> dict[str, Any] | None:
    """Parse a device result message; None when it is not a JSON object."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


_MISSING = object()


def field_at(data: dict[str, Any], path: str) -> object:
    """Return the value at the dotted ``path`` of ``data``, or ``_MISSING``."""
    value: object = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def scalar_text(value: object) -> str | None:
    """Return a JSON scalar as text (``true``, ``12``, ``ON``); None for objects, lists, null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


def json_value(payload: str, path: str) -> str | None:
    """Return the scalar at ``path`` of a JSON object payload; None when there is none."""
    data = parse_result(payload)
    if data is None:
        return None
    value = field_at(data, path)
    return None if value is _MISSING else scalar_text(value)


def message_value(payload: str, path: str | None) -> str | None:
    """Return what a message says at ``path`` (the whole stripped payload when None)."""
    return payload.strip() if path is None else json_value(payload, path)


class ConfirmationMatcher:
    """Follows one command's confirmation from the messages on its confirmation topic."""

    __slots__ = ("_expected", "_step", "command_id", "topic")

    def __init__(self, command_id: str, confirmation: Confirmation, topic: str) -> None:
        """Track ``command_id``; ``confirmation`` has the device's field names filled in and
        ``topic`` is the rendered confirmation topic."""
        self.command_id = command_id
        self.topic = topic
        self._expected: Confirmation = confirmation
        self._step = 0

    @property
    def correlated(self) -> bool:
        """Return True when the device's answers name the command (not just a state)."""
        return isinstance(self._expected, ResultConfirmation)

    def skip_to_last(self) -> None:
        """Resume an acknowledged sequence: only its final payload is still awaited."""
        if isinstance(self._expected, SequenceConfirmation):
            self._step = len(self._expected.payloads) - 1

    def feed(self, payload: str, *, retained: bool) -> Verdict | None:
        """Return the verdict a message on ``self.topic`` gives, or None when it says nothing."""
        if retained:
            return None
        expected = self._expected
        if isinstance(expected, ResultConfirmation):
            return self._feed_result(expected, payload)
        if isinstance(expected, RpcConfirmation):
            return self._feed_rpc(payload)
        if isinstance(expected, NoConfirmation):
            return None
        return self._feed_sequence(expected, payload)

    def _feed_sequence(self, expected: SequenceConfirmation, payload: str) -> Verdict | None:
        if self._step >= len(expected.payloads):
            return None  # already complete: later messages say nothing more
        if expected.failures:
            failure = message_value(payload, expected.failure_path or expected.path)
            if failure in expected.failures:
                self._step = len(expected.payloads)
                return Verdict(
                    CommandStatus.FAILED, ErrorCode.DEVICE_FAILED, f"device reported {failure}"
                )
        if message_value(payload, expected.path) != expected.payloads[self._step]:
            return None
        self._step += 1
        if self._step == len(expected.payloads):
            return Verdict(CommandStatus.COMPLETED)
        return Verdict(CommandStatus.ACKNOWLEDGED)

    def _feed_result(self, expected: ResultConfirmation, payload: str) -> Verdict | None:
        data = parse_result(payload)
        if data is None or not _same_id(field_at(data, expected.id_field), self.command_id):
            return None
        raw = field_at(data, expected.status_field)
        status = (scalar_text(raw) or "") if raw is not _MISSING else ""
        mapped = _result_status(expected, status.upper())
        if mapped is None:
            return None
        verdict_status, error_code = mapped
        error = None
        if error_code is not None:
            reason = field_at(data, expected.reason_field)
            text = None if reason is _MISSING else scalar_text(reason)
            error = _clip(text) if text else f"device answered {status}"
        return Verdict(verdict_status, error_code, error)

    def _feed_rpc(self, payload: str) -> Verdict | None:
        data = parse_result(payload)
        if data is None or not _same_id(data.get("id", _MISSING), self.command_id):
            return None
        if "error" in data:
            return Verdict(CommandStatus.FAILED, ErrorCode.DEVICE_FAILED, _rpc_error(data["error"]))
        if "result" in data:
            return Verdict(CommandStatus.COMPLETED)
        return None  # a request frame (it has a method) or a notification


def _same_id(value: object, command_id: str) -> bool:
    """Return True when an answer's id names the command (a string, or the same as a number)."""
    if isinstance(value, bool) or value is _MISSING:
        return False
    return isinstance(value, str | int) and str(value) == command_id


def _result_status(
    expected: ResultConfirmation, status: str
) -> tuple[CommandStatus, ErrorCode | None] | None:
    for values, mapped in (
        (expected.ack, (CommandStatus.ACKNOWLEDGED, None)),
        (expected.success, (CommandStatus.COMPLETED, None)),
        (expected.failure, (CommandStatus.FAILED, ErrorCode.DEVICE_FAILED)),
        (expected.rejected, (CommandStatus.FAILED, ErrorCode.REJECTED)),
    ):
        if status in (value.upper() for value in values):
            return mapped
    return None


def _rpc_error(error: object) -> str:
    """Return a JSON-RPC error as text: its message (and code), as the device gave it."""
    if isinstance(error, dict):
        message = scalar_text(error.get("message"))
        code = scalar_text(error.get("code"))
        if message and code:
            return _clip(f"{message} (code {code})")
        if message or code:
            return _clip(message or f"error code {code}")
    return "device answered with an error"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"
