"""Everything IoTee shows in Home Assistant's UI beyond its entities, set up once per start."""

from __future__ import annotations

from homeassistant.core import HomeAssistant

from .ws import async_register_websocket


async def async_setup_ui(hass: HomeAssistant) -> None:
    """Register the websocket API."""
    async_register_websocket(hass)
