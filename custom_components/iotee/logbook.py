"""Logbook: a readable line for every command status change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.logbook.const import LOGBOOK_ENTRY_MESSAGE, LOGBOOK_ENTRY_NAME
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN, EVENT_COMMAND_STATUS


def describe_command_event(hass: HomeAssistant, data: dict[str, Any]) -> dict[str, str]:
    """Describe one ``iotee_command_status`` event."""
    name = data.get("hardware_id") or "IoTee"
    if device_id := data.get("device_id"):
        device = dr.async_get(hass).async_get(device_id)
        if device is not None:
            name = device.name_by_user or device.name or name
    command = data.get("command", "")
    if data.get("relay") is not None:
        command = f"{command} on relay {data['relay']}"
    message = f"command {command} ({data.get('command_id')}) is {data.get('new_status')}"
    if data.get("error"):
        message += f": {data['error']}"
    return {LOGBOOK_ENTRY_NAME: str(name), LOGBOOK_ENTRY_MESSAGE: message}


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, str]]], None],
) -> None:
    """Describe IoTee events in the logbook."""

    @callback
    def _describe(event: Event) -> dict[str, str]:
        return describe_command_event(hass, dict(event.data))

    async_describe_event(DOMAIN, EVENT_COMMAND_STATUS, _describe)
