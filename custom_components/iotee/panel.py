"""The sidebar panel "IoTee" and the dashboard card's resource, served by the integration itself.

Both are plain JavaScript modules in ``frontend/``, served from ``STATIC_URL`` (nothing is
fetched from anywhere else). Their URLs carry a hash of every file there (the modules pass it on
to the shared module they import), so a browser never keeps an old version after an upgrade
while it may cache the current one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

from homeassistant.components import frontend, panel_custom
from homeassistant.components.http.server import StaticPathConfig
from homeassistant.core import HomeAssistant

FRONTEND_DIR: Final = Path(__file__).parent / "frontend"
STATIC_URL: Final = "/iotee_static"
PANEL_FILE: Final = "iotee-panel.js"
CARD_FILE: Final = "iotee-commands-card.js"
PANEL_URL_PATH: Final = "iotee"
PANEL_ELEMENT: Final = "iotee-panel"
PANEL_TITLE: Final = "IoTee"
PANEL_ICON: Final = "mdi:format-list-checks"


def frontend_version() -> str:
    """Return a short hash of every served file (read off the event loop)."""
    digest = hashlib.sha256()
    for path in sorted(FRONTEND_DIR.glob("*.js")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def module_url(name: str, version: str) -> str:
    """Return the URL a module is served at."""
    return f"{STATIC_URL}/{name}?v={version}"


async def async_setup_frontend(hass: HomeAssistant, _component: str = "frontend") -> None:
    """Serve the modules, register the admin panel and load the card on every dashboard."""
    version = await hass.async_add_executor_job(frontend_version)
    await hass.http.async_register_static_paths(
        [StaticPathConfig(STATIC_URL, str(FRONTEND_DIR), cache_headers=True)]
    )
    await panel_custom.async_register_panel(
        hass,
        frontend_url_path=PANEL_URL_PATH,
        webcomponent_name=PANEL_ELEMENT,
        sidebar_title=PANEL_TITLE,
        sidebar_icon=PANEL_ICON,
        module_url=module_url(PANEL_FILE, version),
        require_admin=True,
        config={},
    )
    frontend.add_extra_js_url(hass, module_url(CARD_FILE, version))
