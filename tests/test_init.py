"""Setup, unload, repairs, discovery, device removal and diagnostics."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.iotee.const import DOMAIN
from custom_components.iotee.core.device_types import DEVICE_TYPES
from custom_components.iotee.core.store import StoreError

from .broker import PahoPeer
from .conftest import wait_for
from .helpers import (
    DEFAULT_DEVICES,
    LOCK_ID,
    TASMOTA_ID,
    WLTE_ID,
    device,
    engine_of,
    engine_subscribed,
    setup_hub,
)
from .test_custom_device import SAFE


async def test_setup_and_unload(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> None:
    """The hub loads with its engine and unloads cleanly, closing the store."""
    entry = await setup_hub(hass)
    assert entry.state is ConfigEntryState.LOADED
    assert set(engine_of(entry).devices) == {LOCK_ID, WLTE_ID, "tasmota_1"}
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_mqtt_missing_raises_repair_and_retries(hass: HomeAssistant) -> None:
    """Without HA's MQTT integration the hub is not ready and a repair issue explains why."""
    entry = MockConfigEntry(domain=DOMAIN, title="IoTee", unique_id=DOMAIN)
    entry.add_to_hass(hass)
    with patch("custom_components.iotee.mqtt.async_wait_for_mqtt_client", return_value=False):
        await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = ir.async_get(hass).async_get_issue(DOMAIN, "mqtt_unavailable")
    assert issue is not None
    assert issue.translation_key == "mqtt_unavailable"


async def test_repair_cleared_once_mqtt_is_back(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """A later successful setup deletes the repair issue."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        "mqtt_unavailable",
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="mqtt_unavailable",
    )
    await setup_hub(hass)
    assert ir.async_get(hass).async_get_issue(DOMAIN, "mqtt_unavailable") is None


async def test_store_unavailable_is_not_ready(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """A store that cannot be opened leaves the hub retrying, HA running."""
    entry = MockConfigEntry(domain=DOMAIN, title="IoTee", unique_id=DOMAIN)
    entry.add_to_hass(hass)
    with patch(
        "custom_components.iotee.core.store.CommandStore.open", side_effect=StoreError("locked")
    ):
        await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_daily_purge_respects_retention(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """Once a day finished commands older than the retention are purged."""
    entry = await setup_hub(hass, retention_days=1)
    engine = engine_of(entry)
    old = await engine.async_submit(LOCK_ID, "lock", source="test")
    await engine.async_submit(LOCK_ID, "unlock", source="test")  # supersedes `old`
    with patch(
        "custom_components.iotee.engine.utcnow",
        return_value=dt_util.utcnow() + timedelta(days=2),
    ):
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(days=1, seconds=1))
        # The daily purge runs as a background task (HA's time interval listeners do).
        await hass.async_block_till_done(wait_background_tasks=True)
    assert await engine.store.get(old.command_id) is None


async def test_unconfigured_device_online_starts_discovery(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """A built-in type announcing online, not configured, appears in the Discovered list."""
    entry = await setup_hub(hass)
    await engine_subscribed(hass, entry)
    await hass.async_add_executor_job(peer.publish, "wlte/newdev01/status", "online", True)
    await hass.async_add_executor_job(peer.publish, "wlte/newdev01/status", "online", True)
    await wait_for(lambda: hass.config_entries.flow.async_progress_by_handler(DOMAIN))
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["unique_id"] == "wlte_relay:newdev01"
    assert flow["step_id"] == "discovery_confirm"


async def test_removing_device_keeps_history(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """Removing a device subentry removes its entities and registry device; history stays."""
    entry = await setup_hub(hass)
    record = await engine_of(entry).async_submit(LOCK_ID, "lock", source="test")
    lock_subentry = next(
        sid for sid, sub in entry.subentries.items() if sub.data["hardware_id"] == LOCK_ID
    )
    assert hass.config_entries.async_remove_subentry(entry, lock_subentry)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, LOCK_ID), entry.entry_id)
    assert device is None
    assert er.async_get(hass).async_get("lock.front_door") is None
    history = await engine_of(entry).async_list(LOCK_ID)
    assert [r.command_id for r in history] == [record.command_id]


async def test_device_registry_shows_the_family_name_as_model(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """The model is the family's name ("WLTE relay controller"), the type key its model id."""
    shelly = device("shellyplus1-a1", "shelly_gen2", "Pump")
    safe = device("safe1", "custom", "Safe")
    safe["data"] = dict(safe["data"]) | SAFE
    entry = await setup_hub(hass, (*DEFAULT_DEVICES, shelly, safe))
    registry = dr.async_get(hass)
    models = {
        hardware_id: (found.model, found.model_id)
        for hardware_id in (LOCK_ID, WLTE_ID, TASMOTA_ID, "shellyplus1-a1", "safe1")
        if (found := registry.async_get_device_by_identifier((DOMAIN, hardware_id), entry.entry_id))
    }
    assert models == {
        LOCK_ID: ("IoTee lock controller", "iotee_device"),
        WLTE_ID: ("WLTE relay controller", "wlte_relay"),
        TASMOTA_ID: ("Tasmota relay", "tasmota"),
        "shellyplus1-a1": ("Shelly Gen2+ relay", "shelly_gen2"),
        "safe1": ("Custom MQTT lock", "custom"),
    }


async def test_a_model_registered_as_the_type_key_is_renamed(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """A device registered by an older version (model ``iotee_device``) shows the name after
    the next start."""
    entry = await setup_hub(hass)
    registry = dr.async_get(hass)
    found = registry.async_get_device_by_identifier((DOMAIN, LOCK_ID), entry.entry_id)
    assert found is not None
    registry.async_update_device(found.id, model="iotee_device", model_id=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    found = registry.async_get_device_by_identifier((DOMAIN, LOCK_ID), entry.entry_id)
    assert found is not None
    assert (found.model, found.model_id) == ("IoTee lock controller", "iotee_device")


def test_every_family_has_a_model_name() -> None:
    """Each type has a name for people, other than its key."""
    for name, dtype in DEVICE_TYPES.items():
        assert dtype.model, name
        assert dtype.model != name, name


async def test_diagnostics_redacted(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, hass_client: ClientSessionGenerator
) -> None:
    """Diagnostics show devices, state and commands, with callers and params redacted."""
    entry = await setup_hub(hass)
    await engine_of(entry).async_submit(
        LOCK_ID, "lock", params={"pin": "s3cr3t-pin"}, source="test", caller="user-1"
    )
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert len(diagnostics["devices"]) == len(DEFAULT_DEVICES)
    assert diagnostics["stored_commands"] == 1
    (recent,) = diagnostics["recent_commands"]
    assert recent["params"] == "**REDACTED**"
    assert "s3cr3t-pin" not in str(diagnostics)
    assert diagnostics["open_commands"][0]["command"] == "lock"


async def test_device_added_during_setup_is_picked_up(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """A device added while the hub is being set up is loaded too (setup runs again)."""
    from homeassistant.config_entries import ConfigSubentry

    from custom_components.iotee.engine import CommandEngine

    entry = MockConfigEntry(
        domain=DOMAIN, title="IoTee", unique_id=DOMAIN, subentries_data=DEFAULT_DEVICES[:1]
    )
    entry.add_to_hass(hass)
    original = CommandEngine.async_start
    added: list[bool] = []

    async def start_then_add(self: CommandEngine) -> None:
        await original(self)
        if not added:
            added.append(True)
            wlte = DEFAULT_DEVICES[1]
            hass.config_entries.async_add_subentry(
                entry,
                ConfigSubentry(
                    data=wlte["data"],
                    subentry_type=wlte["subentry_type"],
                    title=wlte["title"],
                    unique_id=wlte["unique_id"],
                ),
            )

    with patch.object(CommandEngine, "async_start", start_then_add):
        await hass.config_entries.async_setup(entry.entry_id)  # reloads at its end
        await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert set(engine_of(entry).devices) == {LOCK_ID, WLTE_ID}


async def test_daily_purge_survives_a_store_fault(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """A purge that cannot write logs a warning instead of failing in the background."""
    entry = await setup_hub(hass)
    with patch.object(
        engine_of(entry).store, "purge", side_effect=StoreError("database or disk is full")
    ):
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(days=1, seconds=1))
        await hass.async_block_till_done()
    assert "Could not purge old commands: database or disk is full" in caplog.text
    assert entry.state is ConfigEntryState.LOADED


async def test_every_entity_is_on_its_devices_page(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """Each device's registry entry holds exactly its own entities, as its family supports
    them (what the device's page lists): the lock, a switch or relay lock per relay, a JOG
    button per relay, the reboot button."""
    entry = await setup_hub(hass)
    devices = dr.async_get(hass)
    entities = er.async_get(hass)
    found: dict[str, list[tuple[str, str]]] = {}
    for hardware_id in (LOCK_ID, WLTE_ID, TASMOTA_ID):
        registered = devices.async_get_device_by_identifier((DOMAIN, hardware_id), entry.entry_id)
        assert registered is not None
        found[hardware_id] = sorted(
            (item.domain, item.unique_id.removeprefix(f"{hardware_id}_"))
            for item in er.async_entries_for_device(entities, registered.id)
        )
    assert found == {
        LOCK_ID: [("button", "reboot"), ("lock", "lock")],
        WLTE_ID: [
            *(("button", f"relay_{relay}_jog") for relay in (1, 2, 3, 4)),
            ("lock", "relay_4_lock"),
            *(("switch", f"relay_{relay}") for relay in (1, 2, 3)),
        ],
        TASMOTA_ID: [
            ("button", "reboot"),
            ("button", "relay_1_jog"),
            ("button", "relay_2_jog"),
            ("switch", "relay_1"),
            ("switch", "relay_2"),
        ],
    }


async def test_a_restart_links_entities_to_their_devices_without_touching_the_registry(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """At a start the hub has registered every device before its entities are added, and the
    entities join those devices as they are: HA's device registry is neither asked to create
    nor to update a device for each entity (10,000 times in a large home), and each entity is
    still on its device's page under its device's name."""
    entry = await setup_hub(hass)
    devices = dr.async_get(hass)
    entities = er.async_get(hass)

    def pages() -> dict[str, list[str]]:
        return {
            registered.name or "": sorted(
                item.entity_id for item in er.async_entries_for_device(entities, registered.id)
            )
            for registered in dr.async_entries_for_config_entry(devices, entry.entry_id)
        }

    before = pages()
    names_before = {state.entity_id: state.name for state in hass.states.async_all()}
    writes: list[str] = []
    create, update = devices.async_get_or_create, devices.async_update_device

    def counting_create(**kwargs: object) -> dr.DeviceEntry:
        writes.append("create")
        return create(**kwargs)  # type: ignore[arg-type]

    def counting_update(device_id: str, **kwargs: object) -> dr.DeviceEntry | None:
        writes.append("update")
        return update(device_id, **kwargs)  # type: ignore[arg-type]

    with (
        patch.object(devices, "async_get_or_create", counting_create),
        patch.object(devices, "async_update_device", counting_update),
    ):
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
    assert writes == []
    assert pages() == before
    assert {state.entity_id: state.name for state in hass.states.async_all()} == names_before
    assert hass.states.get("lock.front_door") is not None
