"""A device's command history, also once the device is no longer configured.

Removing a device keeps its commands in the store; they stay queryable by its hardware id (its
Home Assistant device id is gone with it). Every door asks here, so they agree on what exists.
"""

from __future__ import annotations

from .core.errors import UnknownDeviceError
from .core.model import CommandRecord
from .engine import CommandEngine


async def async_device_history(
    engine: CommandEngine, device_ref: str, limit: int
) -> list[CommandRecord]:
    """Return the commands of ``device_ref``, newest first, at most ``limit`` (>= 1).

    ``device_ref`` is a configured device's hardware id or HA device id, or the hardware id of a
    device no longer configured that has stored commands. Raise ``UnknownDeviceError`` when it
    is neither.
    """
    try:
        hardware_id = engine.device(device_ref).hardware_id
    except UnknownDeviceError:
        records = await engine.store.list_commands(device_ref, limit)
        if not records:
            raise
        return records
    return await engine.async_list(hardware_id, limit)
