"""The sidebar panel and the card's resource: registered with the frontend, served locally."""

from __future__ import annotations

from homeassistant.components import frontend
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.iotee.const import DOMAIN
from custom_components.iotee.panel import frontend_version


async def test_panel_and_card_are_served_by_the_integration(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, hass_client: ClientSessionGenerator
) -> None:
    """An admin-only "IoTee" sidebar panel, the card loaded on every page, both served here."""
    assert await async_setup_component(hass, "frontend", {})
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()

    panel = hass.data[frontend.DATA_PANELS]["iotee"]
    assert panel.sidebar_title == "IoTee"
    assert panel.require_admin is True
    version = frontend_version()
    custom = panel.config["_panel_custom"]
    assert custom["name"] == "iotee-panel"
    assert custom["module_url"] == f"/iotee_static/iotee-panel.js?v={version}"
    card_url = f"/iotee_static/iotee-commands-card.js?v={version}"
    assert card_url in hass.data[frontend.DATA_EXTRA_MODULE_URL].urls

    client = await hass_client()
    for name, element in (
        ("iotee-panel.js", 'customElements.define("iotee-panel"'),
        ("iotee-commands-card.js", 'customElements.define("iotee-commands-card"'),
        ("iotee-common.js", "export function"),
    ):
        response = await client.get(f"/iotee_static/{name}?v={version}")
        assert response.status == 200
        assert "javascript" in response.headers["Content-Type"]
        assert element in await response.text()
    # Nothing is loaded from anywhere else.
    for name in ("iotee-panel.js", "iotee-commands-card.js", "iotee-common.js"):
        text = await (await client.get(f"/iotee_static/{name}")).text()
        assert "http://" not in text
        assert "https://" not in text


async def test_without_a_frontend_there_is_no_panel(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    assert "iotee" not in hass.data.get(frontend.DATA_PANELS, {})
