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

``group_commit`` and ``fewer_device_writes``: two cuts of the per-command work of row 3 (see
their docstrings), measured by alternating throughput runs with and without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
import functools
from typing import Any

from custom_components.iotee.core.device_config import DeviceConfig, DeviceState
from custom_components.iotee.core.device_types import CommandSpec
from custom_components.iotee.core.model import CommandRecord
from custom_components.iotee.core.store import (
    CHECKPOINT_EVERY,
    AsyncCommandStore,
    CommandStore,
    RecordRow,
    WritesPendingError,
    _settle,
)
from custom_components.iotee.engine import CommandEngine
from custom_components.iotee.entity import IoteeEntity


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


def group_commit(store: AsyncCommandStore) -> Callable[[], None]:
    """Status updates taken in one loop iteration are written in one transaction.

    Today each deferred update is its own call on the store thread and its own commit;
    here the batch is one call: the rows join the store's kept rows (latest state per command
    wins) and one ``flush`` writes them, with the same failure handling as ``update_row``.
    """

    def submit() -> None:
        if not store._deferred:
            return
        loop = asyncio.get_running_loop()
        deferred, store._deferred = store._deferred, []
        store._submitted += 1
        rows = [row for row, _future in deferred]
        written = loop.run_in_executor(
            store._executor, store._started_call, _update_rows, store.store, rows
        )
        for _row, future in deferred:
            written.add_done_callback(functools.partial(_settle, future))

    patched: Any = submit
    store._submit_deferred = patched  # type: ignore[method-assign]

    def restore() -> None:
        del store._submit_deferred  # type: ignore[method-assign]

    return restore


def _update_rows(store: CommandStore, rows: list[RecordRow]) -> None:
    """``CommandStore.update_row`` for several rows: one transaction."""
    for row in rows:
        command_id = str(row[0])
        store._pending.pop(command_id, None)
        store._pending[command_id] = row
    if store._pending_error is not None:
        raise WritesPendingError(str(store._pending_error), len(store._pending))
    store.flush(store.write_attempts)
    if store._commits >= CHECKPOINT_EVERY:
        store.checkpoint()


def fewer_device_writes() -> Callable[[], None]:
    """An entity writes its state on a device report only when what it shows changed.

    Today every state or availability message of a device writes the state of every entity of
    that device (16 for an 8-relay controller), though a relay's report changes one switch.
    Each write records the availability and state it wrote; a device report that changes
    neither for an entity writes nothing for it (attributes only change with commands).
    """
    original_write = IoteeEntity.async_write_ha_state
    original_on_device = IoteeEntity._on_device
    shown: dict[int, tuple[bool, Any]] = {}

    def write(self: IoteeEntity) -> None:
        shown[id(self)] = (self.available, self.state)
        original_write(self)

    def on_device(self: IoteeEntity, config: DeviceConfig, state: DeviceState) -> None:
        if config.hardware_id != self.config.hardware_id:
            return
        if shown.get(id(self)) == (self.available, self.state):
            return
        self.async_write_ha_state()

    patched_write: Any = write
    patched_on_device: Any = on_device
    IoteeEntity.async_write_ha_state = patched_write  # type: ignore[method-assign]
    IoteeEntity._on_device = patched_on_device  # type: ignore[method-assign]

    def restore() -> None:
        IoteeEntity.async_write_ha_state = original_write  # type: ignore[method-assign]
        IoteeEntity._on_device = original_on_device  # type: ignore[method-assign]

    return restore
