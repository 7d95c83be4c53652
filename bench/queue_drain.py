"""Row "queue drain": 1,000 commands queued for 100 offline devices, delivered when they return.

Every device keeps commands while offline; ten commands (one per relay: the newest per target
wins, so one target holds one) are queued for each of the 100 devices while they say offline.
Then all of them say online at once and the engine publishes the 1,000 queued commands. A loop
probe (``LoopProbe``, 2 ms) records the longest event-loop stall from the first "online" to the
last publish, and the row checks it against ``STALL_LIMIT_MS``.

``measure_queue_drain`` runs in a Home Assistant with the hub and its devices set up: the
benchmark's stock runtime stage runs it as row 6 (``bench.stage``; ``PublishCounter`` counts the
publishes from another MQTT client), and the real broker test ``tests/test_queue_retry.py`` runs
it and prints the row (it asserts delivery, never the time). ``row`` formats the result and
``within_limit`` is the benchmark's verdict: every command delivered, exactly once, and no stall
over ``STALL_LIMIT_MS``. Before the devices come back the same probe measures the idle loop
for ``idle_s`` (the row's baseline, as row 4's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
import json
import os
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

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
    *,
    limit_s: float = 120.0,
    idle_s: float = 0.5,
) -> dict[str, Any]:
    """Queue one command per relay of each (offline) device, bring them online, and wait until
    ``delivered()`` counts every command published (``limit_s`` at most); return the row's
    numbers (``delivered``: the count when the wait ended)."""
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
        with probe.window(result, "idle_stall_ms"):
            await asyncio.sleep(idle_s)
        with probe.window(result, "max_stall_ms"):
            began = time.monotonic()
            await bring_online()
            result["timed_out"] = False
            try:
                async with asyncio.timeout(limit_s):
                    while delivered() < len(queued):  # noqa: ASYNC110 (counted by another thread)
                        await asyncio.sleep(0.01)
            except TimeoutError:
                result["timed_out"] = True
            result["drain_s"] = time.monotonic() - began
            result["delivered"] = delivered()
    finally:
        probe.stop()
    result["queue_s"] = queue_s
    result["command_ids"] = queued
    return result


def within_limit(result: dict[str, Any]) -> bool:
    """Return the row's verdict: no stall over ``STALL_LIMIT_MS`` while draining, and every
    command delivered (exactly once, where ``published_once`` says)."""
    delivered = result.get("delivered", result["commands"]) == result["commands"]
    once = bool(result.get("published_once", True))
    in_time = not result.get("timed_out", False)
    return bool(result["max_stall_ms"] <= STALL_LIMIT_MS) and delivered and once and in_time


class PublishCounter:
    """An MQTT client of its own (paho's thread) counting the commands published to devices.

    ``counts`` maps each command id published on ``wlte/<id>/relay/<n>/set`` of ``hardware_ids``
    to how often it was seen.
    """

    def __init__(self, host: str, port: int, hardware_ids: Iterable[str]) -> None:
        """Prepare the client; ``start`` connects and subscribes."""
        self.host, self.port = host, port
        self.ids = set(hardware_ids)
        self.counts: dict[str, int] = {}
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-queue-{os.getpid()}"
        )
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_args: self._subscribed.set()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if message.topic.split("/")[1] not in self.ids:
            return
        command_id = str(json.loads(message.payload).get("id"))
        self.counts[command_id] = self.counts.get(command_id, 0) + 1

    def start(self) -> None:
        """Connect and subscribe (blocking: run it off the event loop)."""
        self._client.connect(self.host, self.port)
        self._client.loop_start()
        self._client.subscribe("wlte/+/relay/+/set", qos=1)
        if not self._subscribed.wait(10):
            raise TimeoutError("the queue drain's counter was not subscribed")

    def stop(self) -> None:
        """Disconnect (blocking)."""
        self._client.disconnect()
        self._client.loop_stop()

    def delivered(self) -> int:
        """Return how many distinct commands were published."""
        return len(self.counts)


def row(result: dict[str, Any]) -> str:
    """Return the row as one printed line."""
    verdict = (
        "ok"
        if within_limit(result)
        else f"MISSED: ≤ {STALL_LIMIT_MS:g} ms and all {result['commands']} delivered once"
    )
    return (
        f"queue drain: {result['commands']} commands for {result['devices']} offline devices"
        f" queued in {result['queue_s']:.2f} s, {result.get('delivered', result['commands'])}"
        f" delivered in {result['drain_s']:.2f} s after they came back; longest loop stall"
        f" {result['max_stall_ms']:.1f} ms, idle {result['idle_stall_ms']:.1f} ms ({verdict})"
    )
