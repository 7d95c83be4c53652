"""Rows 1 to 3, inside a running Home Assistant: REST latency, confirmed round trip, throughput.

The stage process boots a real Home Assistant (``bench.hassenv``) with HA's MQTT integration on the
benchmark broker and an IoTee hub, starts the simulated devices (``python -m simulator``, answering
at once) and an HTTP client (``python -m bench.client``) as processes of their own, and measures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
import itertools
import json
from pathlib import Path
import socket
import sys
import time
from typing import Any

from homeassistant.components import mqtt
from homeassistant.components.mqtt.models import DATA_MQTT
from homeassistant.core import Context, HomeAssistant, callback

from custom_components.iotee.const import DOMAIN
from custom_components.iotee.engine import CommandEngine

from .broker import pin
from .hassenv import REPO, Device
from .stats import summary_ms

LOCK_ID = "BENCHLOCK"
WLTE_ID = "benchwlte00"
RELAYS = 8


def throughput_devices(count: int) -> list[Device]:
    """The WLTE relay controllers the throughput row drives."""
    return [Device(f"benchtp{index:02d}", "wlte_relay", RELAYS) for index in range(count)]


def runtime_devices(throughput_count: int) -> list[Device]:
    """Every device of the runtime hub (all simulated)."""
    return [
        Device(LOCK_ID, "iotee_device"),
        Device(WLTE_ID, "wlte_relay", RELAYS),
        *throughput_devices(throughput_count),
    ]


@dataclass(frozen=True, slots=True)
class RuntimeSizes:
    """How much the runtime stage does."""

    rounds: int = 1000
    """Requests of each kind in rows 1 and 2 (after the warm-up)."""
    warmup: int = 50
    gap: float = 0.005
    """Pause between two requests, so that each one meets a quiet Home Assistant."""
    tp_commands: int = 4000
    """Commands per throughput run (two runs each for the baseline and IoTee)."""
    tp_concurrency: int = 32
    tp_devices: int = 8
    history_rows: int = 1_000_000
    history_small: int = 1000
    history_queries: int = 200
    history_devices: int = 100


def mqtt_nodelay(hass: HomeAssistant) -> None:
    """Turn Nagle's algorithm off on HA's MQTT client socket (paho leaves it on).

    Otherwise a publish that follows another small packet (a PUBACK) within 40 ms waits for the
    broker's delayed ACK, adding 40 ms to whatever is being measured, baseline or IoTee alike.
    """
    client = hass.data[DATA_MQTT].client
    sock = client._mqttc.socket()
    if not isinstance(sock, socket.socket):
        raise RuntimeError(f"HA's MQTT client has no TCP socket ({sock!r})")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def engine_of(hass: HomeAssistant) -> CommandEngine:
    """Return the loaded hub's engine."""
    entries = hass.config_entries.async_loaded_entries(DOMAIN)
    if not entries:
        raise RuntimeError("the IoTee hub did not load")
    engine: CommandEngine = entries[0].runtime_data.engine
    return engine


async def wait_until(
    predicate: Callable[[], bool], within: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` on the event loop until it holds (``within`` seconds at most)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


class Simulator:
    """The simulated devices (``bench.devices``) as a process pinned off HA's core."""

    def __init__(self, broker: tuple[str, int], devices: list[Device], log: Path) -> None:
        """Prepare the command line."""
        self.args = ["--host", broker[0], "--port", str(broker[1]), "--log-level", "WARNING"]
        for device in devices:
            spec = f"{device.device_type}:{device.hardware_id}"
            if device.relays:
                spec += f":{device.relays}"
            self.args += ["--device", spec]
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, cpus: set[int] | None) -> None:
        """Start the devices."""
        log = await asyncio.to_thread(self.log.open, "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.devices", *self.args, cwd=REPO, stdout=log, stderr=log
            )
        finally:
            log.close()
        pin(self.proc.pid, cpus)

    async def stop(self) -> None:
        """Stop the devices (they say offline and disconnect)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def run_client(job: dict[str, Any], cpus: set[int] | None) -> dict[str, Any]:
    """Run ``bench.client`` with ``job``; return its result."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.client",
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    pin(proc.pid, cpus)
    out, _ = await proc.communicate(json.dumps(job).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"bench.client exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


async def measure_latency(
    port: int, token: str, api_key: str, sizes: RuntimeSizes, cpus: set[int] | None
) -> dict[str, Any]:
    """Rows 1 and 2: one request of each kind per round, one at a time, from another process."""
    bearer = {"Authorization": f"Bearer {token}"}
    job = {
        "base": f"http://127.0.0.1:{port}",
        "rounds": sizes.rounds,
        "warmup": sizes.warmup,
        "gap": sizes.gap,
        "kinds": {
            # HA's own REST API: the service call publishing the very payload IoTee publishes.
            "mqtt_publish": {
                "method": "POST",
                "path": "/api/services/mqtt/publish",
                "headers": bearer,
                "json": {"topic": f"iotee/dev/{LOCK_ID}/rls", "payload": "0", "qos": 1},
                "expect": 200,
            },
            # The Commands API with the same credential (an HA access token)...
            "iotee_send": {
                "method": "POST",
                "path": f"/api/iotee/devices/{LOCK_ID}/commands",
                "headers": bearer,
                "json": {"command": "unlock"},
                "expect": 201,
            },
            # ... and with an IoTee API key.
            "iotee_send_api_key": {
                "method": "POST",
                "path": f"/api/iotee/devices/{LOCK_ID}/commands",
                "headers": {"X-API-Key": api_key},
                "json": {"command": "unlock"},
                "expect": 201,
            },
            # The WLTE relay API waiting for the device's confirmation.
            "wlte_confirmed": {
                "method": "POST",
                "path": f"/api/iotee/wlte/v1/devices/{WLTE_ID}/relays/{{relay}}/commands",
                "relays": RELAYS,
                "headers": bearer,
                "idempotency": True,
                "json": {"action": "ON"},
                "expect": 202,
                "expect_data_status": "SUCCESS",
            },
        },
    }
    result = await run_client(job, cpus)
    out: dict[str, Any] = {}
    for name, samples in result["latencies"].items():
        out[name] = summary_ms(samples) | {
            "errors": len(result["errors"][name]),
            "first_errors": result["errors"][name][:3],
        }
    return out


class ResultWaiter:
    """Device results (WLTE ``.../result``) by command id, for the bare-publish baseline."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Wait on ``hass``."""
        self.hass = hass
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.successes = 0

    @callback
    def on_message(self, msg: mqtt.ReceiveMessage) -> None:
        """Count a result; resolve the waiter of its id."""
        try:
            result = json.loads(msg.payload)
        except ValueError:
            return
        if result.get("status") != "SUCCESS":
            return
        self.successes += 1
        future = self.pending.pop(str(result.get("id")), None)
        if future is not None and not future.done():
            future.set_result(None)

    def expect(self, command_id: str) -> asyncio.Future[None]:
        """Return a future resolved by the device's SUCCESS for ``command_id``."""
        future: asyncio.Future[None] = self.hass.loop.create_future()
        self.pending[command_id] = future
        return future


async def _closed_loop(
    workers: int, per_worker: int, one: Callable[[int, int], Awaitable[None]]
) -> tuple[float, float]:
    """Run ``one(worker, i)`` ``per_worker`` times in each of ``workers`` tasks.

    Return the wall time and the share of it this process spent on a CPU.
    """

    async def worker(index: int) -> None:
        for i in range(per_worker):
            await one(index, i)

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker(index) for index in range(workers)))
    return time.perf_counter() - started, (time.process_time() - cpu)


async def measure_throughput(
    hass: HomeAssistant, context: Context, sizes: RuntimeSizes, waiter: ResultWaiter
) -> dict[str, Any]:
    """Row 3: confirmed commands per second, ``tp_concurrency`` in flight, one relay each.

    Baseline: ``mqtt.publish`` service calls of the WLTE command payload, each followed by waiting
    for the device's SUCCESS. IoTee: ``iotee.relay_command`` with ``wait: true`` (stored, tracked,
    confirmed, every status change persisted); the run ends when the last write is stored.
    """
    engine = engine_of(hass)
    targets = [
        (device.hardware_id, relay)
        for device in throughput_devices(sizes.tp_devices)
        for relay in range(1, RELAYS + 1)
    ]
    workers = min(sizes.tp_concurrency, len(targets))
    per_worker = max(1, sizes.tp_commands // workers)
    serial = itertools.count()
    statuses: dict[str, int] = {}

    async def bare(worker: int, _i: int) -> None:
        hardware_id, relay = targets[worker]
        command_id = f"bench{next(serial):012d}"
        confirmed = waiter.expect(command_id)
        await hass.services.async_call(
            "mqtt",
            "publish",
            {
                "topic": f"wlte/{hardware_id}/relay/{relay}/set",
                "payload": json.dumps({"id": command_id, "action": "ON"}),
                "qos": 1,
            },
            blocking=True,
            context=context,
        )
        async with asyncio.timeout(30):
            await confirmed

    async def tracked(worker: int, _i: int) -> None:
        hardware_id, relay = targets[worker]
        response = await hass.services.async_call(
            DOMAIN,
            "relay_command",
            {"device": hardware_id, "relay": relay, "action": "ON", "wait": True},
            blocking=True,
            context=context,
            return_response=True,
        )
        assert response is not None
        status = str(response["status"])
        statuses[status] = statuses.get(status, 0) + 1

    async def tracked_drained() -> tuple[float, float]:
        cpu = time.process_time()
        started = time.perf_counter()
        await _closed_loop(workers, per_worker, tracked)
        # The store runs its calls in order on one thread: once this one returns, every status
        # change queued before it is on disk.
        await engine.store.get("bench-drain")
        return time.perf_counter() - started, time.process_time() - cpu

    runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "iotee": []}
    # Warm-up, then baseline and IoTee alternately, twice.
    await _closed_loop(workers, max(1, per_worker // 10), bare)
    await tracked_drained()
    statuses.clear()
    for _ in range(2):
        runs["baseline"].append(await _closed_loop(workers, per_worker, bare))
        runs["iotee"].append(await tracked_drained())
    commands = workers * per_worker * 2
    out: dict[str, Any] = {"concurrency": workers, "commands_per_run": workers * per_worker}
    for name, measured in runs.items():
        wall = sum(run[0] for run in measured)
        cpu = sum(run[1] for run in measured)
        out[name] = {
            "per_s": commands / wall,
            "runs_per_s": [workers * per_worker / run[0] for run in measured],
            "ha_cpu_share": cpu / wall,
        }
    out["iotee"]["statuses"] = statuses
    return out


@dataclass(frozen=True, slots=True)
class RuntimeContext:
    """What the runtime rows need from the stage."""

    hass: HomeAssistant
    http_port: int
    token: str
    context: Context
    api_key: str
    other_cpus: set[int] | None


async def run_rows_1_to_3(ctx: RuntimeContext, sizes: RuntimeSizes) -> dict[str, Any]:
    """Measure rows 1 to 3 and return their raw results."""
    hass = ctx.hass
    waiter = ResultWaiter(hass)
    unsubscribe = await mqtt.async_subscribe(hass, "wlte/+/relay/+/result", waiter.on_message, 1)
    try:
        latency = await measure_latency(
            ctx.http_port, ctx.token, ctx.api_key, sizes, ctx.other_cpus
        )
        throughput = await measure_throughput(hass, ctx.context, sizes, waiter)
    finally:
        unsubscribe()
    return {"sizes": asdict(sizes), "latency": latency, "throughput": throughput}
