"""How a command record is shown to callers: the Commands API shape and the WLTE shape."""

from __future__ import annotations

from typing import Any

from .model import CommandRecord, isoformat_z


def command_to_dict(record: CommandRecord) -> dict[str, Any]:
    """Return the Commands API representation of a record (also used by service responses)."""
    return {
        "command_id": record.command_id,
        "hardware_id": record.hardware_id,
        "device_id": record.device_id,
        "device_type": record.device_type,
        "topic": record.topic,
        "command": record.command,
        "relay": record.relay,
        "params": record.params,
        "payload": record.payload,
        "status": record.status.value,
        "created_at": isoformat_z(record.created_at),
        "updated_at": None if record.updated_at is None else isoformat_z(record.updated_at),
        "deadline": isoformat_z(record.deadline),
        "history": [
            {"status": item.status.value, "at": isoformat_z(item.at)} for item in record.transitions
        ],
        "error_code": record.error_code,
        "error": record.error,
        "late_confirmation": record.late_confirmation,
        "late_confirmation_at": (
            None
            if record.late_confirmation_at is None
            else isoformat_z(record.late_confirmation_at)
        ),
        "retry_of": record.retry_of,
        "source": record.source,
        "queued": record.queued,
        "queued_until": None if record.queued_until is None else isoformat_z(record.queued_until),
        "attempts": [
            {
                "number": attempt.number,
                "published_at": isoformat_z(attempt.published_at),
                "outcome": attempt.outcome,
            }
            for attempt in record.attempts
        ],
    }


def command_to_wlte(record: CommandRecord) -> dict[str, Any]:
    """Return the WLTE relay API ``data`` of a record."""
    return {
        "id": record.command_id,
        "deviceId": record.hardware_id,
        "relayIndex": record.relay,
        "action": record.command,
        "status": record.status.wlte,
        "createdAt": record.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
