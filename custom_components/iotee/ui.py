"""Everything IoTee shows in Home Assistant's UI beyond its entities, set up once per start.

The websocket API, the sidebar panel and the dashboard card's resource (once the frontend is
set up: without a frontend there is no UI to serve), and the Activity page's outcome lines.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_when_setup

from .outcomes import async_setup_outcomes
from .panel import async_setup_frontend
from .ws import async_register_websocket


async def async_setup_ui(hass: HomeAssistant) -> None:
    """Register the websocket API, the panel and card (with the frontend) and outcome lines."""
    async_register_websocket(hass)
    async_setup_outcomes(hass)
    async_when_setup(hass, "frontend", async_setup_frontend)
