"""What "stored before answered" costs one command on an idle event loop.

``python -m bench.insert_latency [COUNT]`` inserts COUNT commands (2,000) one after another into
a fresh store in a temporary directory through ``AsyncCommandStore.insert``, as the engine does
before it publishes or answers, and prints the p50 and p90 of that await, next to the p50 of a
bare round trip to the same worker thread (a no-op submitted to it). Not a benchmark row:
the number docs/performance.md quotes for the part of a REST send that is the durable insert.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
import statistics
import sys
import tempfile
import time

from custom_components.iotee.core.model import CommandRecord, utcnow
from custom_components.iotee.core.store import AsyncCommandStore, CommandStore


def _record(number: int) -> CommandRecord:
    now = utcnow()
    return CommandRecord(
        command_id=f"bench{number:08d}",
        hardware_id="bench-device",
        device_id=None,
        device_type="wlte_relay",
        command="ON",
        relay=number % 8 + 1,
        topic="wlte/bench-device/relay/1/set",
        payload='{"action": "ON"}',
        params={},
        created_at=now,
        deadline=now + timedelta(seconds=10),
        source="api",
    )


async def measure(count: int) -> dict[str, float]:
    """Return the insert's p50 / p90 and the bare thread round trip's p50, in microseconds."""
    with tempfile.TemporaryDirectory() as directory:
        store = AsyncCommandStore(CommandStore(Path(directory) / "iotee.db"))
        await store.open()
        inserts: list[float] = []
        hops: list[float] = []
        try:
            for number in range(count):
                record = _record(number)
                started = time.perf_counter()
                await store.insert(record)
                inserts.append(time.perf_counter() - started)
                started = time.perf_counter()
                await store._worker.submit(int)
                hops.append(time.perf_counter() - started)
            stored = await store.count()
            if stored != count:
                raise RuntimeError(f"{stored} of {count} inserts are in the store")
        finally:
            await store.close()
    inserts.sort()
    return {
        "insert_p50_us": statistics.median(inserts) * 1e6,
        "insert_p90_us": inserts[int(len(inserts) * 0.9)] * 1e6,
        "thread_round_trip_p50_us": statistics.median(hops) * 1e6,
    }


def main() -> None:
    """Measure and print."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    result = asyncio.run(measure(count))
    print(
        f"{count} inserts: p50 {result['insert_p50_us']:.0f} us, p90 "
        f"{result['insert_p90_us']:.0f} us; the worker thread's bare round trip p50 "
        f"{result['thread_round_trip_p50_us']:.0f} us"
    )


if __name__ == "__main__":
    main()
