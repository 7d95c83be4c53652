"""Locks: the lock of an IoTee lock controller, and relays that drive a door strike."""

from __future__ import annotations

from typing import Any

from homeassistant.components.lock import LockEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .core.device_config import DeviceConfig
from .engine import CommandEngine
from .entity import IoteeEntity, async_setup_device_entities
from .runtime import IoteeConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: IoteeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a lock per lock device and per relay configured as a lock."""
    await async_setup_device_entities(hass, entry, Platform.LOCK, async_add_entities, _locks)


def _locks(engine: CommandEngine, config: DeviceConfig) -> list[LockEntity]:
    entities: list[LockEntity] = []
    if config.device_type.has_lock:
        entities.append(DeviceLock(engine, config))
    entities.extend(RelayLock(engine, config, relay) for relay in sorted(config.relay_locks))
    return entities


class _TrackedLock(IoteeEntity, LockEntity):
    """A lock whose locking/unlocking shows the command in flight."""

    _lock_command = "lock"
    _unlock_command = "unlock"
    _relay: int | None = None

    def _in_flight(self, command: str) -> bool:
        last = self._last
        # A command waiting for its offline device is not under way yet: the lock shows
        # locking/unlocking once it is published (``queued_until`` says it waits).
        return (
            last is not None and last.command == command and not last.finished and not last.queued
        )

    @property
    def is_locking(self) -> bool:
        """Return True while a lock command is in flight."""
        return self._in_flight(self._lock_command)

    @property
    def is_unlocking(self) -> bool:
        """Return True while an unlock command is in flight."""
        return self._in_flight(self._unlock_command)

    async def async_lock(self, **kwargs: Any) -> None:
        """Lock, and wait until the device confirms it."""
        await self._async_run("lock", self._relay)

    async def async_unlock(self, **kwargs: Any) -> None:
        """Unlock, and wait until the device confirms it."""
        await self._async_run("unlock", self._relay)


class DeviceLock(_TrackedLock):
    """The lock of an iotee_device; its state comes from the device's state topic."""

    _attr_name = None

    def __init__(self, engine: CommandEngine, config: DeviceConfig) -> None:
        """Create the device's lock."""
        super().__init__(engine, config, "lock", "lock")

    @property
    def is_locked(self) -> bool | None:
        """Return the lock state the device last reported."""
        return self.state_data.locked


class RelayLock(_TrackedLock):
    """A relay driving a lock: relay ON is unlocked, relay OFF is locked."""

    _attr_translation_key = "relay_lock"
    _lock_command = "OFF"
    _unlock_command = "ON"

    def __init__(self, engine: CommandEngine, config: DeviceConfig, relay: int) -> None:
        """Create the lock of one relay."""
        super().__init__(engine, config, f"relay_{relay}_lock", f"relay:{relay}")
        self._relay = relay
        self._attr_translation_placeholders = {"relay": str(relay)}

    @property
    def is_locked(self) -> bool | None:
        """Return True when the relay is reported OFF."""
        on = self.state_data.relays.get(self._relay or 0)
        return None if on is None else not on
