"""Logbook: one readable line per command outcome, with an icon and the user who sent it.

"Front door unlocked - confirmed by the device in 48 ms", "Gate controller relay 2 ON timed out -
not confirmed within 10 s", "Front door lock queued until the device is back (expires 18:30)".
Only ``iotee_command_outcome`` is described (``outcomes.py``); the
intermediate status changes stay events for automations without cluttering the Activity page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_ICON,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .outcomes import EVENT_COMMAND_OUTCOME

_DONE: Final = {
    "lock": "locked",
    "unlock": "unlocked",
    "reboot": "restarted",
    "ON": "switched on",
    "OFF": "switched off",
    "JOG": "pulsed",
}
_DONE_RELAY_LOCK: Final = {"ON": "unlocked", "OFF": "locked"}
_ICONS: Final = {
    "lock": "mdi:lock",
    "unlock": "mdi:lock-open-variant",
    "reboot": "mdi:restart",
    "ON": "mdi:toggle-switch",
    "OFF": "mdi:toggle-switch-off",
    "JOG": "mdi:gesture-tap-button",
}
_ICON_FAILED: Final = "mdi:alert-circle"
_ICON_TIMEOUT: Final = "mdi:timer-alert-outline"
_ICON_PUBLISHED: Final = "mdi:send-check"
_ICON_QUEUED: Final = "mdi:timer-sand"


def _local_time(value: object) -> str | None:
    """Return an RFC 3339 time as the local HH:MM (Home Assistant's time zone)."""
    parsed = dt_util.parse_datetime(value) if isinstance(value, str) else None
    return None if parsed is None else dt_util.as_local(parsed).strftime("%H:%M")


def _duration(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _device_name(hass: HomeAssistant, data: dict[str, Any]) -> str:
    name = data.get("name") or data.get("hardware_id") or "IoTee"
    if device_id := data.get("device_id"):
        device = dr.async_get(hass).async_get(device_id)
        if device is not None:
            name = device.name_by_user or device.name or name
    return str(name)


def describe_outcome(hass: HomeAssistant, data: dict[str, Any]) -> dict[str, str]:
    """Describe one ``iotee_command_outcome`` event."""
    command = str(data.get("command", ""))
    relay = data.get("relay")
    status = data.get("status")
    # With the target's entity the Activity page shows its name ("Relay 2") and the device's;
    # without one the line names the relay itself.
    where = "" if relay is None or data.get("entity_id") else f"relay {relay} "
    if status == "completed":
        done = (_DONE_RELAY_LOCK if data.get("relay_lock") else {}).get(command)
        done = done or _DONE.get(command, f"{command} done")
        message = f"{where}{done} — confirmed by the device in {_duration(data['duration_ms'])}"
        icon = _ICONS.get(command, "mdi:check-circle")
    elif status == "published":
        message = f"{where}{command} sent — the device does not confirm commands"
        icon = _ICON_PUBLISHED
    elif status == "queued":
        message = f"{where}{command} queued until the device is back"
        if until := _local_time(data.get("queued_until")):
            message += f" (expires {until})"
        icon = _ICON_QUEUED
    elif status == "timeout":
        message = f"{where}{command} timed out — not confirmed within {_seconds(data['timeout_s'])}"
        icon = _ICON_TIMEOUT
    else:
        message = f"{where}{command} failed"
        if error := data.get("error"):
            message += f" — {error}"
        icon = _ICON_FAILED
    if data.get("retry_of"):
        message += " (retry)"
    if status != "queued" and (attempts := data.get("attempts") or 0) > 1:
        message += f" after {attempts} attempts"
    described = {
        LOGBOOK_ENTRY_NAME: _device_name(hass, data),
        LOGBOOK_ENTRY_MESSAGE: message,
        LOGBOOK_ENTRY_ICON: icon,
    }
    if entity_id := data.get("entity_id"):
        described[LOGBOOK_ENTRY_ENTITY_ID] = entity_id
    return described


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, str]]], None],
) -> None:
    """Describe IoTee's command outcomes in the logbook."""

    @callback
    def _describe(event: Event) -> dict[str, str]:
        return describe_outcome(hass, dict(event.data))

    async_describe_event(DOMAIN, EVENT_COMMAND_OUTCOME, _describe)
