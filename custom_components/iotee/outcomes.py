"""One ``iotee_command_outcome`` event per command that ended: what the Activity page shows.

A command kept for an offline device gets one too, with status ``queued`` and its expiry: the
Activity page says it waits ("queued until the device is back (expires 18:30)").

``iotee_command_status`` is fired for every status change (automations follow it); the
logbook describes only the outcome, with the facts a readable line needs: how long the device
took, the timeout it had, the entity of the target and the user who sent it (as the event's
context, so Home Assistant names them).
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.core import Context, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er

from .const import DOMAIN
from .core.model import CommandRecord, CommandStatus, isoformat_z
from .engine import CommandEngine
from .engine_watch import async_follow_engine
from .ws.present import caller_user_id

EVENT_COMMAND_OUTCOME: Final = "iotee_command_outcome"
STATUS_QUEUED: Final = "queued"
"""The outcome event's status of a command kept for its offline device (not an end)."""


def _target_entity(hass: HomeAssistant, record: CommandRecord, relay_lock: bool) -> str | None:
    """Return the entity acting on the command's target (as the platforms name them)."""
    hardware_id = record.hardware_id
    if record.relay is None:
        candidates = (
            [("button", f"{hardware_id}_reboot")]
            if record.command == "reboot"
            else [("lock", f"{hardware_id}_lock")]
        )
    elif record.command == "JOG":
        candidates = [("button", f"{hardware_id}_relay_{record.relay}_jog")]
    elif relay_lock:
        candidates = [("lock", f"{hardware_id}_relay_{record.relay}_lock")]
    else:
        candidates = [("switch", f"{hardware_id}_relay_{record.relay}")]
    registry = er.async_get(hass)
    for platform, unique_id in candidates:
        if entity_id := registry.async_get_entity_id(platform, DOMAIN, unique_id):
            return entity_id
    return None


def outcome_data(
    hass: HomeAssistant, engine: CommandEngine, record: CommandRecord
) -> dict[str, Any]:
    """Return the outcome event's data for a record that just ended."""
    config = engine.devices.get(record.hardware_id)
    relay_lock = config is not None and record.relay in config.relay_locks
    ended = record.transition_at(record.status) or record.created_at
    # A command that waited for its offline device: the device's time counts from the publish.
    started = (
        record.attempts[0].published_at
        if record.queued_until is not None and record.attempts
        else record.created_at
    )
    return {
        "command_id": record.command_id,
        "hardware_id": record.hardware_id,
        "device_id": record.device_id,
        "entity_id": _target_entity(hass, record, relay_lock),
        "name": None if config is None else config.name,
        "command": record.command,
        "relay": record.relay,
        "relay_lock": relay_lock,
        "status": record.status.value,
        "error_code": record.error_code,
        "error": record.error,
        "duration_ms": round(max((ended - started).total_seconds(), 0.0) * 1000),
        "timeout_s": round((record.deadline - record.created_at).total_seconds(), 3),
        "source": record.source,
        "retry_of": record.retry_of,
        "attempts": len(record.attempts),
        "queued_until": None if record.queued_until is None else isoformat_z(record.queued_until),
    }


@callback
def async_setup_outcomes(hass: HomeAssistant) -> None:
    """Fire the outcome event for every command that ends, on whichever engine is loaded."""

    def attach(engine: CommandEngine) -> Any:
        @callback
        def changed(record: CommandRecord, old: CommandStatus | None) -> None:
            if old is None and record.queued:
                # Kept for an offline device: the Activity page says so, and until when.
                data = outcome_data(hass, engine, record) | {"status": STATUS_QUEUED}
                hass.bus.async_fire(
                    EVENT_COMMAND_OUTCOME,
                    data,
                    context=Context(user_id=caller_user_id(record.caller)),
                )
                return
            if old is None or old is record.status or not record.finished:
                return
            hass.bus.async_fire(
                EVENT_COMMAND_OUTCOME,
                outcome_data(hass, engine, record),
                context=Context(user_id=caller_user_id(record.caller)),
            )

        return engine.add_command_listener(changed)

    async_follow_engine(hass, attach)
