"""Everything IoTee shows in Home Assistant's UI beyond its entities, set up once per start.

The websocket API behind the panel and the card, and the Activity page's outcome lines.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant

from .outcomes import async_setup_outcomes
from .ws import async_register_websocket


async def async_setup_ui(hass: HomeAssistant) -> None:
    """Register the websocket API and the outcome lines of the Activity page."""
    async_register_websocket(hass)
    async_setup_outcomes(hass)
