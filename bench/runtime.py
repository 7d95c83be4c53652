"""Rows 1 to 3, inside a running Home Assistant: REST latency, confirmed round trip, throughput.

The stage process boots a real Home Assistant (``bench.hassenv``) with HA's MQTT integration on the
benchmark broker and an IoTee hub, starts the simulated devices (``python -m simulator``, answering
at once) and an HTTP client (``python -m bench.client``) as processes of their own, and measures:
every latency kind spaced 50 ms apart and in bursts (``bench.client``), and the throughput of
confirmed commands with Home Assistant on one core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import functools
import itertools
import json
import os
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

from .breakdown import measure_breakdown
from .broker import pin
from .hassenv import REPO, Device
from .queue_drain import RELAYS as QUEUE_RELAYS, device_ids as queue_device_ids
from .stats import summary_ms

LOCK_ID = "BENCHLOCK"
WLTE_ID = "benchwlte00"
RELAYS = 8


def throughput_devices(count: int) -> list[Device]:
    """The WLTE relay controllers the throughput row drives."""
    return [Device(f"benchtp{index:02d}", "wlte_relay", RELAYS) for index in range(count)]


def simulated_devices(throughput_count: int) -> list[Device]:
    """The devices of the runtime hub the simulator runs (answering at once)."""
    return [
        Device(LOCK_ID, "iotee_device"),
        Device(WLTE_ID, "wlte_relay", RELAYS),
        *throughput_devices(throughput_count),
    ]


def queue_devices(count: int) -> list[Device]:
    """The queue drain row's WLTE controllers: never simulated, offline until the row brings
    them back, keeping commands for 30 minutes."""
    return [
        Device(hardware_id, "wlte_relay", QUEUE_RELAYS, queue_minutes=30)
        for hardware_id in queue_device_ids(count)
    ]


def runtime_devices(throughput_count: int, queue_count: int = 0) -> list[Device]:
    """Every device of the runtime hub: the simulated ones, then ``queue_count`` queue devices."""
    return [*simulated_devices(throughput_count), *queue_devices(queue_count)]


@dataclass(frozen=True, slots=True)
class RuntimeSizes:
    """How much the runtime stages do."""

    spaced_rounds: int = 200
    """Requests of each kind 50 ms apart (after ``spaced_warmup``)."""
    spaced_warmup: int = 20
    spaced_gap: float = 0.05
    bursts: int = 40
    """Bursts of each kind (after ``burst_warmup``)."""
    burst_size: int = 10
    """Requests of one kind back to back in a burst."""
    burst_pause: float = 0.1
    """Quiet between two bursts (longer than a delayed ACK, 40 ms)."""
    burst_warmup: int = 2
    tp_commands: int = 4000
    """Commands per throughput run (two runs each for the baseline and IoTee)."""
    tp_concurrency: int = 32
    tp_devices: int = 8
    history_rows: int = 1_000_000
    history_small: int = 1000
    history_queries: int = 200
    history_devices: int = 100
    queue_devices: int = 100
    """Offline devices of the queue drain row (row 6), 10 queued commands each."""


def mqtt_nodelay(hass: HomeAssistant) -> None:
    """Turn Nagle's algorithm off on HA's MQTT client socket (the tuned stage only)."""
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
    """The simulated devices (``bench.devices``) as a process of their own."""

    def __init__(
        self, broker: tuple[str, int], devices: list[Device], log: Path, *, nodelay: bool
    ) -> None:
        """Prepare the command line; ``nodelay`` turns Nagle off on the devices' sockets."""
        self.args = ["--nodelay"] if nodelay else []
        self.args += ["--host", broker[0], "--port", str(broker[1]), "--log-level", "WARNING"]
        for device in devices:
            spec = f"{device.device_type}:{device.hardware_id}"
            if device.relays:
                spec += f":{device.relays}"
            self.args += ["--device", spec]
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, cpus: set[int] | None) -> None:
        """Start the devices (pinned to ``cpus`` unless None)."""
        log = await asyncio.to_thread(self.log.open, "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.devices", *self.args, cwd=REPO, stdout=log, stderr=log
            )
        finally:
            log.close()
        pin(self.proc.pid, cpus)

    @property
    def pid(self) -> int | None:
        """Return the devices' process id once started."""
        return None if self.proc is None else self.proc.pid

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


def latency_kinds(token: str, api_key: str) -> dict[str, dict[str, Any]]:
    """The requests of the latency rows (IoTee's sends checked to answer ``pending``)."""
    bearer = {"Authorization": f"Bearer {token}"}
    key = {"X-API-Key": api_key}

    def publish(qos: int) -> dict[str, Any]:
        # HA's own REST API: the service call publishing the very payload IoTee publishes.
        return {
            "method": "POST",
            "path": "/api/services/mqtt/publish",
            "headers": bearer,
            "json": {"topic": f"iotee/dev/{LOCK_ID}/rls", "payload": "0", "qos": qos},
            "expect": 200,
        }

    def send(lock: str, headers: dict[str, str], status: str | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "method": "POST",
            "path": f"/api/iotee/devices/{lock}/commands",
            "headers": headers,
            "json": {"command": "unlock"},
            "expect": 201,
        }
        if status is not None:
            spec |= {"expect_status": status, "status_at": ["status"]}
        return spec

    kinds = {
        "mqtt_publish_qos0": publish(0),
        "mqtt_publish_qos1": publish(1),
        "iotee_send": send(LOCK_ID, bearer, "pending"),
        "iotee_send_api_key": send(LOCK_ID, key, "pending"),
    }
    # The WLTE relay API waiting for the device's confirmation, each request on the next relay.
    kinds["wlte_confirmed"] = {
        "method": "POST",
        "path": f"/api/iotee/wlte/v1/devices/{WLTE_ID}/relays/{{relay}}/commands",
        "relays": RELAYS,
        "headers": bearer,
        "idempotency": True,
        "json": {"action": "ON"},
        "expect": 202,
        "expect_status": "SUCCESS",
        "status_at": ["data", "status"],
    }
    return kinds


async def measure_latency(
    port: int,
    token: str,
    api_key: str,
    sizes: RuntimeSizes,
    cpus: set[int] | None,
) -> dict[str, Any]:
    """Rows 1 and 2: the kinds spaced 50 ms apart and in bursts, from another process."""
    kinds = latency_kinds(token, api_key)
    job = {
        "base": f"http://127.0.0.1:{port}",
        "kinds": kinds,
        "patterns": {
            "spaced": {
                "rounds": sizes.spaced_rounds,
                "warmup": sizes.spaced_warmup,
                "gap": sizes.spaced_gap,
            },
            "burst": {
                "bursts": sizes.bursts,
                "size": sizes.burst_size,
                "pause": sizes.burst_pause,
                "warmup": sizes.burst_warmup,
            },
        },
    }
    result = await run_client(job, cpus)
    out: dict[str, Any] = {}
    for pattern, measured in result.items():
        out[pattern] = {
            name: summary_ms(samples)
            | {
                "errors": len(measured["errors"][name]),
                "first_errors": measured["errors"][name][:3],
                "over_10ms": sum(1 for sample in samples if sample > 0.010),
            }
            for name, samples in measured["latencies"].items()
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


def threads_cpu() -> dict[str, float]:
    """Return the CPU seconds this process's threads have used, summed by thread name (the
    digits of a pool's thread numbers dropped: ``iotee_store``, ``MainThread``...)."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/self/task/{task}/comm", encoding="utf-8") as comm:
                name = comm.read().strip().rstrip("0123456789").rstrip("_-") or "?"
        except OSError:  # the thread ended meanwhile
            continue
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


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
    hass: HomeAssistant,
    context: Context,
    sizes: RuntimeSizes,
    waiter: ResultWaiter,
    *,
    profile: Path | None = None,
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
    statuses: dict[str, dict[str, int]] = {}
    side_now = ["warm-up"]

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
                # What IoTee's automatic command QoS gives a controller that confirms.
                "qos": 0,
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
        counts = statuses.setdefault(side_now[0], {})
        counts[status] = counts.get(status, 0) + 1

    async def tracked_drained() -> tuple[float, float]:
        cpu = time.process_time()
        started = time.perf_counter()
        await _closed_loop(workers, per_worker, tracked)
        # The store runs its calls in order on one thread: once this one returns, every status
        # change queued before it is on disk.
        await engine.store.get("bench-drain")
        return time.perf_counter() - started, time.process_time() - cpu

    sides: dict[str, Callable[[], Awaitable[tuple[float, float]]]] = {
        "baseline": lambda: _closed_loop(workers, per_worker, bare),
        "iotee": tracked_drained,
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    threads: dict[str, dict[str, float]] = {name: {} for name in sides}
    # Warm-up, then every side in turn, twice.
    await _closed_loop(workers, max(1, per_worker // 10), bare)
    await tracked_drained()
    for _ in range(2):
        for name, side in sides.items():
            side_now[0] = name
            before = threads_cpu()
            runs[name].append(await side())
            for thread, used in threads_cpu().items():
                spent = used - before.get(thread, 0.0)
                threads[name][thread] = threads[name].get(thread, 0.0) + spent
    commands = workers * per_worker * 2
    out: dict[str, Any] = {"concurrency": workers, "commands_per_run": workers * per_worker}
    for name, measured in runs.items():
        wall = sum(run[0] for run in measured)
        cpu = sum(run[1] for run in measured)
        out[name] = {
            "per_s": commands / wall,
            "runs_per_s": [workers * per_worker / run[0] for run in measured],
            "ha_cpu_share": cpu / wall,
            "cpu_ms_per_command_by_thread": {
                thread: round(used * 1000 / commands, 4)
                for thread, used in sorted(threads[name].items(), key=lambda item: -item[1])
                if used > 0
            },
        }
    for name, counts in statuses.items():
        if name in out:  # not the warm-up
            out[name]["statuses"] = counts
    side_now[0] = "breakdown"
    out["breakdown"] = {
        name: await measure_breakdown(side, workers * per_worker) for name, side in sides.items()
    }
    if profile is not None:
        side_now[0] = "profiled"
        out["profile"] = await profile_throughput(
            profile,
            {
                "baseline": lambda: _closed_loop(workers, per_worker, bare),
                "iotee": tracked_drained,
            },
        )
    return out


async def profile_throughput(
    out_dir: Path, runs: dict[str, Callable[[], Awaitable[Any]]]
) -> dict[str, Any]:
    """Run each of ``runs`` once more under pyinstrument (event-loop thread); write the reports.

    Returns the wall time of each profiled run (inflated by the profiler, not a measurement).
    """
    return {name: await _profiled(out_dir, f"throughput-{name}", run) for name, run in runs.items()}


async def _profiled(out_dir: Path, name: str, run: Callable[[], Awaitable[Any]]) -> float:
    """Run ``run`` under pyinstrument (event-loop thread); write ``name``.txt and .pyisession
    into ``out_dir``; return the wall time (inflated by the profiler, not a measurement)."""
    from pyinstrument import Profiler

    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    started = time.perf_counter()
    profiler.start()
    try:
        await run()
    finally:
        profiler.stop()
    elapsed = time.perf_counter() - started
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    await asyncio.to_thread((out_dir / f"{name}.txt").write_text, text)
    await asyncio.to_thread(profiler.last_session.save, str(out_dir / f"{name}.pyisession"))
    return elapsed


BURST_PROFILED = ("mqtt_publish_qos0", "iotee_send_api_key")
"""The kinds whose bursts ``profile_bursts`` profiles: the baseline and IoTee's send."""


async def profile_bursts(ctx: RuntimeContext, sizes: RuntimeSizes, out_dir: Path) -> Any:
    """Rows 1's bursts once more, one kind at a time, under pyinstrument: what the event loop
    does while a caller sends commands back to back (``burst-<kind>.txt``)."""
    kinds = latency_kinds(ctx.token, ctx.api_key)
    timings: dict[str, float] = {}
    for kind in BURST_PROFILED:
        job = {
            "base": f"http://127.0.0.1:{ctx.http_port}",
            "kinds": {kind: kinds[kind]},
            "patterns": {
                "burst": {
                    "bursts": sizes.bursts,
                    "size": sizes.burst_size,
                    "pause": sizes.burst_pause,
                    "warmup": 0,
                }
            },
        }
        timings[kind] = await _profiled(
            out_dir, f"burst-{kind}", functools.partial(run_client, job, ctx.client_cpus)
        )
    return timings


@dataclass(frozen=True, slots=True)
class RuntimeContext:
    """What the runtime rows need from the stage."""

    hass: HomeAssistant
    http_port: int
    token: str
    context: Context
    api_key: str
    client_cpus: set[int] | None
    """Where the HTTP client runs (None: anywhere)."""


async def run_latency(ctx: RuntimeContext, sizes: RuntimeSizes) -> Any:
    """Rows 1 and 2."""
    return await measure_latency(ctx.http_port, ctx.token, ctx.api_key, sizes, ctx.client_cpus)


async def run_throughput(
    ctx: RuntimeContext,
    sizes: RuntimeSizes,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Row 3; with ``profile``, one more run of each side under pyinstrument afterwards."""
    hass = ctx.hass
    waiter = ResultWaiter(hass)
    # QoS 0, HA's default for a subscription (an automation's MQTT trigger) and IoTee's own: a
    # QoS 1 subscription to the same filter would make HA acknowledge every result on both sides.
    unsubscribe = await mqtt.async_subscribe(hass, "wlte/+/relay/+/result", waiter.on_message, 0)
    try:
        return await measure_throughput(hass, ctx.context, sizes, waiter, profile=profile)
    finally:
        unsubscribe()
