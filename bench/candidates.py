"""Changes to IoTee measured before they are made: harnesses that patch one running engine.

Nothing here changes IoTee's code; each function patches one engine instance of a benchmark
Home Assistant and returns what undoes it. docs/performance.md has the measured effect and the
change each one stands for.

``answer_once_stored``: the Commands API answers once the record is stored (``pending``) and the
publish goes on after the answer. The engine's checks that need no waiting - superseding an open
command, HA's MQTT client not connected, the device known to be offline - still run before the
answer, so a caller still gets ``failed`` at once for those; only a publish that fails later
(the broker refusing it, the connection dropping meanwhile) reaches the caller through the
record, the ``iotee_command_status`` event and the entity, as any later status does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Any

from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.device_types import CommandSpec
from custom_components.iotee.core.model import CommandRecord
from custom_components.iotee.engine import CommandEngine


def answer_once_stored(engine: CommandEngine, hardware_ids: Collection[str]) -> Callable[[], None]:
    """Commands API sends (``source == "api"``) to ``hardware_ids`` answer before the PUBACK.

    The dispatch runs as an eagerly started task: everything up to its first wait (the checks,
    tracking, handing the PUBLISH to HA's MQTT client) happens before ``async_submit`` returns,
    the wait for the broker's PUBACK and the move to ``published`` after.
    """
    original = engine._async_dispatch
    tasks: set[asyncio.Task[None]] = set()

    async def dispatch(record: CommandRecord, config: DeviceConfig, spec: CommandSpec) -> None:
        if record.source != "api" or record.hardware_id not in hardware_ids:
            await original(record, config, spec)
            return
        task = engine.hass.async_create_task(
            original(record, config, spec), f"iotee publish {record.command_id}", eager_start=True
        )
        if not task.done():
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    patched: Any = dispatch
    engine._async_dispatch = patched  # type: ignore[method-assign]

    def restore() -> None:
        del engine._async_dispatch  # type: ignore[method-assign]

    return restore
