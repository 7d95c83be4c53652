"""Confirmation matching: does an MQTT message move a published command forward?

A retained message never confirms anything: the broker sends retained messages to a new
subscriber as old news, while a device's answer to a command reaches existing subscribers live.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Any

from .device_types import Confirmation, ResultConfirmation, SequenceConfirmation
from .model import CommandStatus, ErrorCode

RESULT_STATUSES: dict[str, tuple[CommandStatus, ErrorCode | None]] = {
    "ACK": (CommandStatus.ACKNOWLEDGED, None),
    "SUCCESS": (CommandStatus.COMPLETED, None),
    "FAILED": (CommandStatus.FAILED, ErrorCode.DEVICE_FAILED),
    "REJECTED": (CommandStatus.FAILED, ErrorCode.REJECTED),
}


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


class ConfirmationMatcher:
    """Follows one command's confirmation from the messages on its confirmation topic."""

    __slots__ = ("_expected", "_step", "command_id", "topic")

    def __init__(self, command_id: str, confirmation: Confirmation, topic: str) -> None:
        """Track ``command_id``; ``topic`` is the rendered confirmation topic."""
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
        if isinstance(self._expected, ResultConfirmation):
            return self._feed_result(payload)
        return self._feed_sequence(self._expected, payload)

    def _feed_sequence(self, expected: SequenceConfirmation, payload: str) -> Verdict | None:
        if self._step >= len(expected.payloads):
            return None  # already complete: later messages say nothing more
        if payload.strip() != expected.payloads[self._step]:
            return None
        self._step += 1
        if self._step == len(expected.payloads):
            return Verdict(CommandStatus.COMPLETED)
        return Verdict(CommandStatus.ACKNOWLEDGED)

    def _feed_result(self, payload: str) -> Verdict | None:
        data = parse_result(payload)
        if data is None or data.get("id") != self.command_id:
            return None
        mapped = RESULT_STATUSES.get(str(data.get("status", "")).upper())
        if mapped is None:
            return None
        status, error_code = mapped
        reason = data.get("reason")
        error = None
        if error_code is not None:
            error = str(reason) if reason else f"device answered {data.get('status')}"
        return Verdict(status, error_code, error)
