"""Browser tests: a real Home Assistant, a real broker, simulated devices and Debian's Chromium.

Nothing is downloaded: Playwright drives ``/usr/bin/chromium`` (``scripts/setup`` installs it);
``playwright install`` is never run.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
import os
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright
import pytest

from simulator import SimulatedDevice
from simulator.broker import Mosquitto
from tests.helpers import LOCK_ID, WLTE_ID, device

from .real_hass import RealHass, write_hub

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
UPDATE_SCREENSHOTS = os.environ.get("IOTEE_UPDATE_SCREENSHOTS") == "1"
"""Set to 1 to write the screenshots into docs/images (README's pictures)."""


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No in-process test Home Assistant here: these tests run a real one."""


@dataclass
class Env:
    """What a browser test works with."""

    hass: RealHass
    lock: SimulatedDevice
    gate: SimulatedDevice
    shots: Path


@pytest.fixture
def env(socket_enabled: None, tmp_path: Path) -> Generator[Env]:
    """A broker, a simulated lock and relay controller, and an onboarded real HA."""
    (tmp_path / "mosquitto").mkdir()
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    lock = SimulatedDevice("iotee_device", LOCK_ID, broker.host, broker.port).start()
    gate = SimulatedDevice("wlte_relay", WLTE_ID, broker.host, broker.port, relays=4).start()
    config = tmp_path / "config"
    config.mkdir()
    write_hub(
        config,
        (broker.host, broker.port),
        [
            device(LOCK_ID, "iotee_device", "Front door"),
            device(WLTE_ID, "wlte_relay", "Gate controller", relays=4, relay_locks=[4]),
        ],
        {"command_timeout": 3.0},
    )
    hass = RealHass(config)
    shots = DOCS_IMAGES if UPDATE_SCREENSHOTS else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        hass.start()
        hass.onboard()
        hass.wait_for_states(("lock.front_door", "switch.gate_controller_relay_1"))
        yield Env(hass, lock, gate, shots)
    finally:
        hass.stop()
        gate.stop()
        lock.stop()
        broker.stop()


@pytest.fixture
def browser() -> Generator[Browser]:
    """Debian's Chromium, headless."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Generator[Page]:
    """A page of a fresh browser context (light colour scheme, 1280x800)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    context.set_default_timeout(20000)
    yield context.new_page()
    context.close()
