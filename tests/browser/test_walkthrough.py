"""A person's walk through IoTee in Home Assistant's UI, in Chromium against a real HA.

Log in; the IoTee panel lists the commands live; filter and search; a failed command's
timeline; retry it and watch the retry complete; the dark theme; the card from the card
picker on a dashboard, showing a new command as it happens; the Activity page; the "API key
created" dialog with its secret; adding a Shelly and starting a custom device, and the Shelly's
device page with its model. No page visited shows "Translation error" or a raw
translation key. Screenshots go to docs/images with IOTEE_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from simulator import Mode
from tests.helpers import LOCK_ID, WLTE_ID

from .conftest import Env
from .real_hass import OWNER

# All text on the page, shadow roots included (HA's UI is web components all the way down).
ALL_TEXT = """() => {
  const parts = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.shadowRoot) { parts.push(el.shadowRoot.textContent); walk(el.shadowRoot); }
    }
  };
  parts.push(document.body.innerText);
  walk(document);
  return parts.join("\\n");
}"""
RAW_KEY = re.compile(r"component\.iotee\.|ui\.panel\.|\[%key:")


def no_translation_errors(page: Page, where: str) -> None:
    """Nothing on the page is a failed or raw translation."""
    text = page.evaluate(ALL_TEXT)
    assert "Translation error" not in text, where
    assert not RAW_KEY.search(text), f"{where}: {RAW_KEY.search(text)}"


def rgb(locator: Locator, prop: str) -> list[int]:
    """The red, green and blue of a computed colour."""
    value = locator.evaluate(f"el => getComputedStyle(el).{prop}")
    return [int(v) for v in re.findall(r"\d+", value)[:3]]


def log_in(page: Page, env: Env) -> None:
    page.goto(env.hass.base + "/")
    page.get_by_label("Username").fill(OWNER["username"])
    page.get_by_label("Password", exact=True).fill(OWNER["password"])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/home/**")


def seed(env: Env) -> dict[str, Any]:
    """Commands as a household makes them: some done, one failed, one timed out."""
    hass = env.hass
    for command in ("unlock", "lock"):
        hass.service("iotee", "send_command", {"device": LOCK_ID, "command": command, "wait": True})
    for relay, action in ((1, "ON"), (2, "JOG")):
        hass.service(
            "iotee",
            "relay_command",
            {"device": WLTE_ID, "relay": relay, "action": action, "wait": True},
        )
    env.gate.set_behaviour(mode=Mode.FAIL)
    failed = hass.service(
        "iotee", "relay_command", {"device": WLTE_ID, "relay": 3, "action": "ON", "wait": True}
    )
    env.gate.set_behaviour(mode=Mode.NORMAL)
    env.lock.set_behaviour(mode=Mode.SILENT)
    timed_out = hass.service(
        "iotee", "send_command", {"device": LOCK_ID, "command": "unlock", "wait": True}
    )
    env.lock.set_behaviour(mode=Mode.NORMAL)
    assert (failed["status"], timed_out["status"]) == ("failed", "timeout")
    return {"failed": failed, "timed_out": timed_out}


def test_walkthrough(env: Env, page: Page) -> None:
    seeded = seed(env)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, env)

    # The panel: newest first, live.
    page.get_by_role("link", name="IoTee", exact=True).click()
    panel = page.locator("iotee-panel")
    rows = panel.locator("tbody tr")
    expect(rows).to_have_count(6)
    expect(rows.first).to_contain_text("Timed out")
    expect(panel.locator(".live")).to_have_text("Live")
    page.screenshot(path=env.shots / "panel.png")
    no_translation_errors(page, "panel")

    # Filters and the id search.
    panel.locator("select[name=status]").select_option("failed")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("relay did not switch")
    panel.locator("select[name=status]").select_option("")
    panel.locator("select[name=device]").select_option(LOCK_ID)
    expect(rows).to_have_count(3)
    panel.locator("select[name=device]").select_option("")
    panel.locator("input[name=search]").fill(seeded["timed_out"]["command_id"][:8])
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("no confirmation within 3 s")
    panel.locator("input[name=search]").fill("")
    expect(rows).to_have_count(6)

    # A failed command's timeline.
    rows.filter(has_text="relay did not switch").click()
    dialog = panel.locator("dialog[open]")
    expect(dialog).to_contain_text("Gate controller · Relay 3 · ON")
    steps = dialog.locator("ol.timeline li")
    expect(steps).to_have_count(4)
    for index, status in enumerate(("Pending", "Published", "Acknowledged", "Failed")):
        expect(steps.nth(index)).to_contain_text(status)
    expect(dialog).to_contain_text("device_failed")
    page.screenshot(path=env.shots / "details.png")
    no_translation_errors(page, "details")

    # Retry it: the retry appears and completes without a reload.
    dialog.get_by_role("button", name="Retry").click()
    chain = dialog.locator("ul.chain li")
    expect(chain).to_have_count(2)
    expect(chain.nth(1)).to_contain_text("Completed")
    dialog.get_by_role("button", name="Close").click()
    expect(rows).to_have_count(7)
    expect(rows.first).to_contain_text("ON (retry)")
    expect(rows.first).to_contain_text("Completed")

    # The dark theme: light text on a dark card.
    page.emulate_media(color_scheme="dark")
    # HA switches its theme variables a moment after the colour scheme changes.
    page.wait_for_function(
        "card => Number(getComputedStyle(card).backgroundColor.match(/\\d+/)[0]) < 80",
        arg=panel.locator(".card").element_handle(),
    )
    card_background = rgb(panel.locator(".card"), "backgroundColor")
    text = rgb(panel.locator("tbody td").first, "color")
    assert max(card_background) < 80, card_background
    assert min(text) > 180, text
    page.screenshot(path=env.shots / "panel-dark.png")
    page.emulate_media(color_scheme="light")

    # The card: from the card picker onto a new dashboard, then a new command appears on it.
    env.hass.ws(
        "lovelace/dashboards/create",
        url_path="iotee-doors",
        title="Doors",
        require_admin=False,
        show_in_sidebar=True,
    )
    env.hass.ws(
        "lovelace/config/save",
        url_path="iotee-doors",
        config={"views": [{"title": "Doors", "cards": []}]},
    )
    page.goto(env.hass.base + "/iotee-doors/0")
    page.get_by_role("button", name="Edit dashboard").first.click()
    page.get_by_role("button", name="Add card").first.click()
    page.get_by_role("tab", name="By card").click()
    page.get_by_placeholder("Search cards").fill("IoTee")
    page.get_by_text("IoTee commands", exact=True).first.click(force=True)
    expect(page.get_by_text("IoTee commands card configuration")).to_be_visible()
    no_translation_errors(page, "card editor")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Done").click()
    card = page.locator("hui-card iotee-commands-card, iotee-commands-card").first
    expect(card.locator("li").first).to_be_visible()
    title = card.locator(".header").inner_text()
    if title == "Front door":
        env.hass.service("iotee", "send_command", {"device": LOCK_ID, "command": "lock"})
        newest = "lock"
    else:
        assert title == "Gate controller", title
        env.hass.service("iotee", "relay_command", {"device": WLTE_ID, "relay": 2, "action": "OFF"})
        newest = "OFF"
    expect(card.locator("li").first).to_contain_text(newest)
    expect(card.locator("li").first.locator(".chip")).to_have_text("Completed")
    card.screenshot(path=env.shots / "card.png")
    no_translation_errors(page, "dashboard")

    # The Activity page: one readable line per outcome, with the user.
    page.goto(env.hass.base + "/logbook")
    expect(page.get_by_text("confirmed by the device in").first).to_be_visible()
    expect(page.get_by_text("timed out — not confirmed within 3 s").first).to_be_visible()
    no_translation_errors(page, "activity")
    page.screenshot(path=env.shots / "activity.png")

    # The hub's settings, with the command QoS as a translated choice.
    page.goto(env.hass.base + "/config/integrations/integration/iotee")
    page.get_by_role("button", name="Configure").first.click()
    flow = page.locator("dialog-data-entry-flow")
    flow.get_by_text("Settings", exact=True).click()  # the sidebar has a "Settings" too
    expect(flow.get_by_text("IoTee settings")).to_be_visible()
    expect(flow.get_by_text("QoS 1: acknowledged by the broker")).to_be_visible()
    qos0 = flow.get_by_text("QoS 0: not acknowledged, faster confirmations")
    expect(qos0).to_be_visible()
    qos0.scroll_into_view_if_needed()
    no_translation_errors(page, "hub settings")
    page.screenshot(path=env.shots / "hub-settings.png")
    page.keyboard.press("Escape")

    # "API key created" shows the secret.
    page.goto(env.hass.base + "/config/integrations/integration/iotee")
    page.get_by_role("button", name="Configure").first.click()
    page.get_by_text("Create a REST API key").first.click()
    page.get_by_role("textbox", name="Name").fill("gate app")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text("API key created", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"^ik_[0-9a-f]{8}\.[A-Za-z0-9_-]{40,}$"))).to_be_visible()
    no_translation_errors(page, "API key created")
    page.keyboard.press("Escape")

    add_devices(page, env)
    assert not [e for e in errors if "iotee" in e.lower()], errors


def start_adding(
    page: Page, env: Env, name: str, device_type: str, hardware_id: str, shot: str | None = None
) -> Locator:
    """Open the hub's "Add device" flow and fill its first step (its screenshot as ``shot``:
    the delivery options are on it); return the flow dialog."""
    page.goto(env.hass.base + "/config/integrations/integration/iotee")
    page.get_by_role("button", name="Add device").first.click()
    dialog = page.locator("dialog-data-entry-flow")
    expect(dialog.get_by_text("Add a device")).to_be_visible()
    no_translation_errors(page, "add device")
    dialog.get_by_role("textbox", name="Name").fill(name)
    dialog.get_by_label("Device type").click()
    page.get_by_text(device_type, exact=True).click()
    dialog.get_by_role("textbox", name="Hardware id").fill(hardware_id)
    expect(dialog.get_by_text("Keep commands while offline (minutes)")).to_be_visible()
    if shot is not None:
        # The type's menu fades out after the pick: wait until its last option is gone.
        expect(page.get_by_text("A device I describe (topics and payloads)")).to_be_hidden()
        page.screenshot(path=env.shots / shot)
    dialog.get_by_role("button", name="Submit").click()
    return dialog


def add_devices(page: Page, env: Env) -> None:
    """Add a Shelly through every step of the flow (named by its type, its relays to choose as
    locks), then start describing a custom device; the Shelly's page shows its model."""
    shelly = "Shelly Gen2+ relay (Plus, Pro, Gen3, Gen4) over MQTT RPC"
    dialog = start_adding(page, env, "Pump", shelly, "shellyplus2pm-a1", shot="add-device.png")
    expect(dialog.get_by_text(f"Where this device ({shelly}) listens and answers")).to_be_visible()
    no_translation_errors(page, "Shelly settings")
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog.get_by_text("Number of relays")).to_be_visible()
    dialog.get_by_role("spinbutton").fill("2")
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog.get_by_text("Relays that drive a lock").first).to_be_visible()
    no_translation_errors(page, "lock relays")
    page.screenshot(path=env.shots / "add-device-lock-relays.png")
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog.get_by_text("Created configuration")).to_be_visible()
    page.keyboard.press("Escape")

    dialog = start_adding(
        page, env, "Side gate", "A device I describe (topics and payloads)", "sidegate"
    )
    expect(dialog.get_by_text("Describe the device")).to_be_visible()
    no_translation_errors(page, "custom device")
    page.screenshot(path=env.shots / "add-device-custom.png")
    page.keyboard.press("Escape")

    devices = env.hass.ws("config/device_registry/list")
    (pump,) = [d for d in devices if d["name"] == "Pump"]
    assert (pump["model"], pump["model_id"]) == ("Shelly Gen2+ relay", "shelly_gen2")
    page.goto(env.hass.base + f"/config/devices/device/{pump['id']}")
    expect(page.get_by_text("Shelly Gen2+ relay").first).to_be_visible()
    no_translation_errors(page, "device page")
    page.screenshot(path=env.shots / "device-page.png")
