"""Reliability: a device floods its state topic; HA's event loop stays responsive, memory flat.

A separate process (its own interpreter, so it does not share HA's GIL) publishes
``FLOOD_RATE`` state messages per second for ``FLOOD_SECONDS`` seconds on one relay's state topic
of a configured WLTE controller. Meanwhile a probe scheduled with ``loop.call_later`` every
``PROBE_INTERVAL`` seconds measures how late the event loop runs it (the loop lag), the process's
resident memory is sampled every second, and a command to another relay of the same device is
sent through the flood and must complete. The figures are printed (run with ``-s``) and checked
only against loose sanity bounds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass, field
import gc
import json
import math
import os
import sys
import time

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT
from custom_components.iotee.core.device_config import DeviceConfig, DeviceState
from custom_components.iotee.core.model import CommandStatus
from simulator import SimulatedDevice

from .broker import Mosquitto
from .conftest import wait_for
from .helpers import WLTE_ID, device, engine_of, engine_subscribed, setup_hub

FLOOD_RATE = 1000
"""State messages per second."""
FLOOD_SECONDS = 10.0
PROBE_INTERVAL = 0.01
"""Seconds between two event-loop lag probes."""
MAX_LAG = 1.0
"""Sanity bound: the event loop is never blocked this long (seconds)."""
P99_LAG = 0.25
MAX_RSS_GROWTH = 64 * 1024 * 1024
"""Sanity bound on memory growth over the flood (bytes); a leak per message would exceed it."""

FLOODER = r"""
import json, sys, time
import paho.mqtt.client as paho

host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rate, seconds = float(sys.argv[4]), float(sys.argv[5])
client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="flooder")
client.connect(host, port)
client.loop_start()
while not client.is_connected():
    time.sleep(0.01)
print("ready", flush=True)
sys.stdin.readline()
total = int(rate * seconds)
start = time.monotonic()
for index in range(total):
    due = start + index / rate
    wait = due - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    client.publish(topic, "ON" if index % 2 == 0 else "OFF", qos=0)
elapsed = time.monotonic() - start
client.disconnect()
client.loop_stop()
print(json.dumps({"sent": total, "elapsed": elapsed}), flush=True)
"""


def rss_bytes() -> int:
    """Return this process's resident set size."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(values: list[float], fraction: float) -> float:
    """Return the ``fraction`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class LagProbe:
    """Measures how late the event loop runs a callback scheduled every ``interval`` seconds."""

    loop: asyncio.AbstractEventLoop
    interval: float = PROBE_INTERVAL
    lags: list[float] = field(default_factory=list)
    _due: float = 0.0
    _handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start probing (clears earlier samples)."""
        self.lags = []
        self._schedule()

    def stop(self) -> list[float]:
        """Stop probing; return the lags measured, in seconds."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        return self.lags

    def _schedule(self) -> None:
        self._due = self.loop.time() + self.interval
        self._handle = self.loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self.lags.append(max(0.0, self.loop.time() - self._due))
        self._schedule()


@pytest.fixture
def relay_controller(mosquitto: Mosquitto) -> Generator[SimulatedDevice]:
    """The WLTE controller whose state topic is flooded (it also answers commands)."""
    with SimulatedDevice(
        "wlte_relay", WLTE_ID, mosquitto.host, mosquitto.port, relays=2
    ) as controller:
        yield controller


async def test_device_flood_keeps_the_loop_responsive_and_memory_flat(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    mosquitto: Mosquitto,
    relay_controller: SimulatedDevice,
) -> None:
    """1,000 state messages per second for 10 s: lag and memory stay bounded; commands work."""
    entry = await setup_hub(
        hass,
        (device(WLTE_ID, "wlte_relay", "Gate controller", relays=2),),
        **{CONF_COMMAND_TIMEOUT: 5.0},
    )
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    await wait_for(lambda: engine.states[WLTE_ID].online is True)
    seen = 0

    def count(config: DeviceConfig, state: DeviceState) -> None:
        nonlocal seen
        seen += 1

    entry.async_on_unload(engine.add_device_listener(count))
    flooder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FLOODER,
        mosquitto.host,
        str(mosquitto.port),
        f"wlte/{WLTE_ID}/relay/1/state",
        str(FLOOD_RATE),
        str(FLOOD_SECONDS),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert flooder.stdin is not None
    assert flooder.stdout is not None
    try:
        assert (await asyncio.wait_for(flooder.stdout.readline(), 10)).strip() == b"ready"

        probe = LagProbe(hass.loop)
        probe.start()
        await asyncio.sleep(1.0)
        idle = probe.stop()
        gc.collect()
        rss_before = rss_bytes()

        seen = 0
        probe.start()
        flooder.stdin.write(b"go\n")
        await flooder.stdin.drain()
        started = time.monotonic()
        cpu_started = time.process_time()
        rss_samples = []
        command_latency = None
        for second in range(int(FLOOD_SECONDS)):
            if second == int(FLOOD_SECONDS) // 2:
                sent_at = time.monotonic()
                record = await engine.async_submit(WLTE_ID, "ON", relay=2, source="test")
                final = await engine.async_wait(record.command_id, 5)
                assert final.status is CommandStatus.COMPLETED
                command_latency = time.monotonic() - sent_at
            await asyncio.sleep(max(0.0, started + second + 1 - time.monotonic()))
            rss_samples.append(rss_bytes())
        result = json.loads(await asyncio.wait_for(flooder.stdout.readline(), 30))
        flood_lags = probe.stop()
        published_in = time.monotonic() - started
        cpu_share = (time.process_time() - cpu_started) / published_in
        await wait_for(lambda: seen >= result["sent"], timeout=10)
        drained_in = time.monotonic() - started - published_in
        await flooder.wait()
    finally:
        if flooder.returncode is None:
            flooder.kill()
            await flooder.wait()

    gc.collect()
    rss_after = rss_bytes()
    growth = rss_after - rss_before
    steady_growth = rss_samples[-1] - rss_samples[1]
    max_lag = max(flood_lags)
    p99 = percentile(flood_lags, 0.99)
    mib = 1024 * 1024
    print(  # figures for README's Reliability section
        f"\nflood: {result['sent']} messages in {result['elapsed']:.2f} s"
        f" ({result['sent'] / result['elapsed']:.0f}/s), {seen} state updates processed,"
        f" the last one"
        f" {drained_in:.2f} s after the last publish;"
        f" loop lag idle p99 {percentile(idle, 0.99) * 1000:.1f} ms"
        f" max {max(idle) * 1000:.1f} ms; under flood p50"
        f" {percentile(flood_lags, 0.5) * 1000:.1f} ms p99 {p99 * 1000:.1f} ms"
        f" max {max_lag * 1000:.1f} ms ({len(flood_lags)} probes);"
        f" command during flood completed in {command_latency:.3f} s;"
        f" HA process CPU {cpu_share:.0%} of one core;"
        f" RSS {rss_before / mib:.1f} -> {rss_after / mib:.1f} MiB"
        f" (+{growth / mib:.1f}; seconds 2..{int(FLOOD_SECONDS)}: {steady_growth / mib:+.1f})"
    )
    assert result["sent"] == int(FLOOD_RATE * FLOOD_SECONDS)
    assert seen >= result["sent"]  # nothing dropped: every message handled (+ relay 2's report)
    assert max_lag < MAX_LAG
    assert p99 < P99_LAG
    assert growth < MAX_RSS_GROWTH
    assert steady_growth < MAX_RSS_GROWTH / 2
    assert engine.states[WLTE_ID].relays[1] is False  # the last message (OFF) is the state
    assert not list(engine.open_commands())
