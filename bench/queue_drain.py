"""Row "queue drain": 1,000 commands queued for 100 offline devices, delivered when they return.

Every device keeps commands while offline; ten commands (one per relay: the newest per target
wins, so one target holds one) are queued for each of the 100 devices while they say offline.
Then all of them say online at once and the engine publishes the 1,000 queued commands. A loop
probe (``LoopProbe``, 2 ms) records the longest event-loop stall from the first "online" to the
last publish, and the row checks it against ``STALL_LIMIT_MS``.

``measure_queue_drain`` runs in a Home Assistant with the hub and its devices set up (the real
broker test ``tests/test_queue_retry.py`` runs it and prints the row; it asserts delivery, never
the time). ``row`` formats the result and ``within_limit`` is the benchmark's verdict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import time
from typing import Any

from custom_components.iotee.engine import CommandEngine

from .probe import LoopProbe

DEVICES = 100
RELAYS = 10
STALL_LIMIT_MS = 50.0
"""The longest event-loop stall the drain may cause."""


def device_ids(count: int = DEVICES) -> list[str]:
    """Return the WLTE device ids of the row's devices."""
    return [f"q{index:011d}" for index in range(count)]


async def measure_queue_drain(
    engine: CommandEngine,
    hardware_ids: list[str],
    bring_online: Callable[[], Awaitable[None]],
    delivered: Callable[[], int],
    limit_s: float = 120.0,
) -> dict[str, Any]:
    """Queue one command per relay of each (offline) device, bring them online, and wait until
    ``delivered()`` counts every command published; return the row's numbers."""
    queued: list[str] = []
    started = time.monotonic()
    for hardware_id in hardware_ids:
        relays = engine.device(hardware_id).relays
        for relay in range(1, relays + 1):
            record = await engine.async_submit(
                hardware_id, "ON", relay=relay, source="bench", queue=30
            )
            if not record.queued:
                raise RuntimeError(f"{record.command_id} was not queued: {record.status}")
            queued.append(record.command_id)
    queue_s = time.monotonic() - started
    probe = LoopProbe(asyncio.get_running_loop())
    probe.start()
    result: dict[str, Any] = {"devices": len(hardware_ids), "commands": len(queued)}
    try:
        with probe.window(result, "max_stall_ms"):
            began = time.monotonic()
            await bring_online()
            async with asyncio.timeout(limit_s):
                while delivered() < len(queued):  # noqa: ASYNC110 (counted by another thread)
                    await asyncio.sleep(0.01)
            result["drain_s"] = time.monotonic() - began
    finally:
        probe.stop()
    result["queue_s"] = queue_s
    result["command_ids"] = queued
    return result


def within_limit(result: dict[str, Any]) -> bool:
    """Return the row's verdict: no stall over ``STALL_LIMIT_MS`` while draining."""
    return bool(result["max_stall_ms"] <= STALL_LIMIT_MS)


def row(result: dict[str, Any]) -> str:
    """Return the row as one printed line."""
    verdict = "ok" if within_limit(result) else f"OVER {STALL_LIMIT_MS:g} ms"
    return (
        f"queue drain: {result['commands']} commands for {result['devices']} offline devices"
        f" queued in {result['queue_s']:.2f} s, delivered in {result['drain_s']:.2f} s after"
        f" they came back; longest loop stall {result['max_stall_ms']:.1f} ms ({verdict})"
    )
