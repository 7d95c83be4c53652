"""Entity setup of a large home: the loop runs between batches of devices; HA's entity limit."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee import device_sync, entity
from custom_components.iotee.const import DOMAIN
from custom_components.iotee.engine import CommandEngine
from custom_components.iotee.entity_limit import ISSUE_ENTITY_LIMIT

from .helpers import device, setup_hub


async def test_platform_setup_lets_the_loop_run_after_every_batch(hass: HomeAssistant) -> None:
    """250 devices in batches of 100: other work runs after device 100 and after device 200,
    not only once all 250 are added."""
    added: list[str] = []
    runtime = SimpleNamespace(
        engine=None,
        devices={f"sub{n}": SimpleNamespace(name=f"d{n}", device_id=None) for n in range(250)},
        adders={},
        entities={},
    )
    entry: Any = SimpleNamespace(entry_id="hub", runtime_data=runtime)

    def add_entities(entities: list[Any], config_subentry_id: str) -> None:
        added.append(config_subentry_id)

    seen: list[int] = []

    async def probe() -> None:
        while len(added) < 250:
            seen.append(len(added))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(probe())
    await asyncio.sleep(0)
    await entity.async_setup_device_entities(
        hass, entry, Platform.SWITCH, add_entities, lambda engine, config: [SimpleNamespace()]
    )
    await watcher
    assert added == list(runtime.devices)
    assert [count for count in seen if count] == [100, 200]
    assert Platform.SWITCH in runtime.adders


async def test_hub_setup_lets_the_loop_run_between_batches_of_devices(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """250 devices registered in batches of 100: other work runs while the hub's setup is
    between them (it sees 100 and 200 registered), and every device ends up registered once."""
    registry = dr.async_get(hass)

    def registered() -> int:
        return sum(
            1
            for device in registry.devices
            if any(domain == DOMAIN for domain, _ in device.identifiers)
        )

    seen: list[int] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            seen.append(registered())
            await asyncio.sleep(0)

    watcher = asyncio.create_task(probe())
    entry = await setup_hub(
        hass, devices=tuple(device(f"LOCK{n:04d}", "iotee_device") for n in range(250))
    )
    stop.set()
    await watcher
    assert {100, 200} <= set(seen)
    assert len(dr.async_entries_for_config_entry(registry, entry.entry_id)) == 250
    assert len(entry.runtime_data.devices) == 250


async def test_engine_start_lets_the_loop_run_between_batches_of_devices(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """The engine's start builds the 250 devices' configurations and adds them 100 at a time:
    other work runs after the 100th and the 200th of each (the hub's device sync builds them
    once more, likewise), and the engine ends up with every device once."""
    built: list[str] = []
    added: list[str] = []
    real_build = device_sync.device_config_from_subentry
    real_add = CommandEngine.add_device

    def build(subentry: Any) -> Any:
        config = real_build(subentry)
        built.append(config.hardware_id)
        return config

    def add(engine: CommandEngine, config: Any) -> None:
        added.append(config.hardware_id)
        real_add(engine, config)

    seen: list[tuple[int, int]] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            seen.append((len(built), len(added)))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(probe())
    with (
        patch.object(device_sync, "device_config_from_subentry", build),
        patch.object(CommandEngine, "add_device", add),
    ):
        entry = await setup_hub(
            hass, devices=tuple(device(f"LOCK{n:04d}", "iotee_device") for n in range(250))
        )
    stop.set()
    await watcher
    assert {(100, 0), (200, 0), (250, 100), (250, 200), (350, 250), (450, 250)} <= set(seen)
    assert len(added) == len(set(added)) == 250
    assert len(entry.runtime_data.engine.devices) == 250


async def test_entity_limit_is_a_repair_issue_naming_the_devices(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """With HA's limit at 10 the default hub's 15 entities do not all fit: a repair issue says
    how many entities of which devices are missing (IoTee does not offer HA what it refuses,
    so HA's own warning stays out of the log). Disabling 5 entities and reloading makes room:
    every device gets its entities and the issue goes."""
    with patch("homeassistant.helpers.entity_platform.MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY", 10):
        entry = await setup_hub(hass)
        registry = er.async_get(hass)
        registered = {
            e.unique_id for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        }
        assert len(registered) == 10
        runtime = entry.runtime_data
        short = {
            runtime.devices[sid].name
            for sid, entities in runtime.entities.items()
            if any(e.unique_id not in registered for e in entities)
        }
        assert short
        issue = ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ENTITY_LIMIT)
        assert issue is not None
        assert issue.translation_key == ISSUE_ENTITY_LIMIT
        placeholders = issue.translation_placeholders or {}
        assert placeholders["limit"] == "10"
        assert placeholders["entities"] == "5"
        assert placeholders["devices"] == str(len(short))
        assert set(placeholders["names"].split(", ")) == short
        assert "Reached the maximum" not in caplog.text

        for registered_entry in er.async_entries_for_config_entry(registry, entry.entry_id)[:5]:
            registry.async_update_entity(
                registered_entry.entity_id, disabled_by=er.RegistryEntryDisabler.USER
            )
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        assert len(er.async_entries_for_config_entry(registry, entry.entry_id)) == 15
        assert ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ENTITY_LIMIT) is None
