"""Row 4: the command history at scale, in the running hub's own store.

Rows are bulk-inserted through the store's SQLite connection, on the store's worker thread, in one
transaction (``executemany``) - a million commands through the engine would take the whole time
budget. They are shaped like the store's own rows (built with the store's row function from real
records, then varied), spread over 100 devices and 90 days. Queries, purge and sizes are then
measured through the engine as Home Assistant calls it: ``AsyncCommandStore`` on its worker
thread, awaited from the event loop, with a loop probe recording the longest stall. The
baseline, 1,000 commands, is a store of its own (same class, its own worker thread) queried in
turn with the hub's: a slow phase of a shared machine then lands on both sides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from functools import partial
import json
import os
from pathlib import Path
import sqlite3
import time
from typing import Any

from custom_components.iotee.core import store as store_module
from custom_components.iotee.core.model import CommandRecord, CommandStatus, utcnow
from custom_components.iotee.core.representation import command_to_dict
from custom_components.iotee.core.store import AsyncCommandStore, CommandStore
from custom_components.iotee.engine import CommandEngine

from .probe import LoopProbe
from .stats import summary_ms

SPAN = timedelta(days=90)
BULK_CACHE_KIB = 262_144
"""Page cache while bulk-loading (restored afterwards): random command ids make the primary key
index a random-insert workload."""


def _columns() -> list[str]:
    return [name.strip() for name in store_module._COLUMNS.split(",")]


def _template(hardware_id: str, relay: int, action: str, status: CommandStatus) -> CommandRecord:
    now = utcnow()
    record = CommandRecord(
        command_id="0" * 16,
        hardware_id=hardware_id,
        device_id="0123456789abcdef0123456789abcdef",
        device_type="wlte_relay",
        command=action,
        relay=relay,
        topic=f"wlte/{hardware_id}/relay/{relay}/set",
        payload=json.dumps({"id": "0" * 16, "action": action}),
        created_at=now,
        deadline=now + timedelta(seconds=10),
        source="wlte",
        caller="key:ik_0123abcd",
    )
    record.transition(CommandStatus.PUBLISHED, now)
    if status is CommandStatus.COMPLETED:
        record.transition(CommandStatus.ACKNOWLEDGED, now)
        record.transition(CommandStatus.COMPLETED, now)
    elif status is CommandStatus.FAILED:
        record.transition(CommandStatus.ACKNOWLEDGED, now)
        record.transition(
            CommandStatus.FAILED,
            now,
            error_code="device_failed",
            error="relay did not switch (simulated failure)",
        )
    else:
        record.transition(
            CommandStatus.TIMEOUT, now, error_code="timeout", error="no confirmation within 10 s"
        )
    return record


def history_ids(devices: int, first: str) -> list[str]:
    """The hardware ids the history rows belong to; ``first`` (a configured device) among them."""
    return [first] + [f"histdev{index:03d}" for index in range(1, devices)]


def generate_rows(
    count: int, start: int, hardware_ids: list[str], end_ts: float
) -> Iterator[tuple[Any, ...]]:
    """Yield ``count`` store rows numbered from ``start``, oldest first, up to ``end_ts``."""
    columns = _columns()
    at = {name: columns.index(name) for name in columns}
    statuses = [CommandStatus.COMPLETED] * 18 + [CommandStatus.FAILED, CommandStatus.TIMEOUT]
    templates = [
        list(store_module.record_row(_template(hardware_id, relay, action, status)))
        for hardware_id in hardware_ids
        for relay, action in ((1, "ON"), (2, "OFF"), (3, "JOG"))
        for status in statuses
    ]
    step = SPAN.total_seconds() / max(count, 1)
    begin = end_ts - SPAN.total_seconds()
    random_bytes = os.urandom
    for n in range(start, start + count):
        row = templates[(n * 7919) % len(templates)].copy()
        command_id = random_bytes(8).hex()
        created = begin + (n - start) * step
        row[at["command_id"]] = command_id
        row[at["payload"]] = row[at["payload"]].replace("0" * 16, command_id)
        row[at["created_at"]] = created
        row[at["updated_at"]] = created + 0.25
        row[at["deadline"]] = created + 10.0
        if row[at["status"]] == "timeout":
            row[at["transitions"]] = (
                f'[["pending", {created!r}], ["published", {created + 0.004!r}], '
                f'["timeout", {created + 10.0!r}]]'
            )
        else:
            final = row[at["status"]]
            row[at["transitions"]] = (
                f'[["pending", {created!r}], ["published", {created + 0.004!r}], '
                f'["acknowledged", {created + 0.06!r}], ["{final}", {created + 0.25!r}]]'
            )
        yield tuple(row)


def bulk_insert(db: sqlite3.Connection, rows: Iterator[tuple[Any, ...]]) -> None:
    """Insert ``rows`` in one transaction, then checkpoint the WAL into the database file."""
    columns = store_module._COLUMNS
    sql = f"INSERT INTO commands ({columns}) VALUES ({', '.join('?' * len(_columns()))})"
    cache = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    try:
        with db:
            db.executemany(sql, rows)
    finally:
        db.execute(f"PRAGMA cache_size={int(cache)}")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def db_bytes(db: sqlite3.Connection, path: str) -> int:
    """Return the size of the database file (after a WAL checkpoint)."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Path(path).stat().st_size


async def on_store_thread[T](store: AsyncCommandStore, func: Callable[..., T], *args: Any) -> T:
    """Run ``func`` on the store's own worker thread (in order with its other calls)."""
    return await store._worker.submit(func, *args)


async def _timed_together(
    probe: LoopProbe,
    stalls: dict[str, dict[str, float]],
    key: str,
    queries: int,
    calls: dict[str, Callable[[], Any]],
) -> dict[str, dict[str, float]]:
    """Run each side's ``call`` ``queries`` times, alternating (which side goes first swaps
    every round): a slow phase of a shared machine lands on both sides, not on one."""
    samples: dict[str, list[float]] = {side: [] for side in calls}
    returned: dict[str, int] = dict.fromkeys(calls, 0)
    order = list(calls)
    for round_no in range(queries):
        for side in order if round_no % 2 == 0 else reversed(order):
            one: dict[str, float] = {}
            with probe.window(one, key):
                started = time.perf_counter()
                records = await calls[side]()
                samples[side].append(time.perf_counter() - started)
            stalls[side][key] = max(stalls[side].get(key, 0.0), one[key])
            returned[side] = len(records)
    return {side: summary_ms(samples[side]) | {"returned": returned[side]} for side in calls}


async def _measure_both(
    engine: CommandEngine,
    baseline: AsyncCommandStore,
    probe: LoopProbe,
    device: str,
    *,
    queries: int,
    rows: dict[str, int],
) -> dict[str, dict[str, Any]]:
    """Queries and loop stalls on both stores, alternating; then the purge of everything of
    each (one after the other: a purge cannot be repeated)."""
    stalls: dict[str, dict[str, float]] = {"baseline": {}, "ours": {}}
    out: dict[str, dict[str, Any]] = {side: {"rows": count} for side, count in rows.items()}
    for key, hardware_id in (("device_history", device), ("all_commands", None)):
        timed = await _timed_together(
            probe,
            stalls,
            key,
            queries,
            {
                # The baseline store is queried directly, IoTee's through the engine as HA
                # calls it (which adds a device lookup: if anything, it favours the baseline).
                "baseline": partial(baseline.list_commands, hardware_id, 100),
                "ours": partial(engine.async_list, hardware_id, 100),
            },
        )
        for side, summary in timed.items():
            out[side][key] = summary
    idle: dict[str, float] = {}
    with probe.window(idle, "idle"):
        await asyncio.sleep(0.5)

    async def purge_ours() -> int:
        _cutoff, deleted = await engine.async_purge(0)
        return deleted

    purges: dict[str, Callable[[], Awaitable[int]]] = {
        "baseline": lambda: baseline.purge(utcnow()),
        "ours": purge_ours,
    }
    for side, purge in purges.items():
        started = time.perf_counter()
        with probe.window(stalls[side], "purge"):
            out[side]["purged"] = await purge()
        out[side]["purge_s"] = time.perf_counter() - started
        out[side]["stall_ms"] = stalls[side] | idle
    return out


def _remove_store_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def measure_history(
    engine: CommandEngine,
    *,
    probe: LoopProbe,
    device: str,
    rows: int,
    small: int,
    queries: int,
    devices: int,
) -> dict[str, Any]:
    """Row 4: the baseline, ``small`` commands in a store of their own, against ``rows`` in the
    hub's store; both stores are queried in turn."""
    store = engine.store
    db = store.store.db
    path = store.store.path
    # Start from an empty history (the earlier rows' commands are all finished by now).
    await engine.async_purge(0)
    left = await store.count()
    end_ts = time.time() - 60
    out: dict[str, Any] = {"left_before": left, "devices": devices}

    # The baseline store spreads its rows so that the queried device has 100 of them too: both
    # sizes answer the same 100 records, only the table around them grows.
    baseline_path = Path(path).with_name("iotee-history-baseline.db")
    baseline = AsyncCommandStore(CommandStore(baseline_path))
    await baseline.open()
    try:
        small_ids = history_ids(max(1, small // 100), device)
        await on_store_thread(
            baseline, bulk_insert, baseline.store.db, generate_rows(small, 0, small_ids, end_ts)
        )
        started = time.perf_counter()
        hardware_ids = history_ids(devices, device)
        await on_store_thread(
            store, bulk_insert, db, generate_rows(rows, small, hardware_ids, end_ts)
        )
        out["bulk_insert_s"] = time.perf_counter() - started
        stored = await store.count()
        size = await on_store_thread(store, db_bytes, db, path)
        out["bytes_per_command"] = size / stored
        out["db_bytes"] = size
        sample = await engine.async_list(device, 100)
        out["json_bytes_per_command"] = sum(
            len(json.dumps(command_to_dict(record), separators=(",", ":"))) for record in sample
        ) / len(sample)
        measured = await _measure_both(
            engine,
            baseline,
            probe,
            device,
            queries=queries,
            rows={"baseline": small, "ours": stored},
        )
    finally:
        await baseline.close()
        await asyncio.to_thread(_remove_store_files, baseline_path)
    out["baseline"], out["ours"] = measured["baseline"], measured["ours"]
    return out
