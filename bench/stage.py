"""One Home Assistant process of the benchmark (``python -m bench.stage runtime|boot ...``).

``runtime`` boots the prepared config directory and measures rows 1 to 4 and 6 (the queue
drain, last: its devices are the hub's offline ones) in it under one of the network settings of
``bench.network``; ``boot`` boots one and measures its startup (row 5). Each
runs in a fresh process and writes its raw results as JSON to ``--out``. Only the ``tuned``
runtime stage pins the process (Home Assistant with all its threads) to ``--ha-cpus`` and the
devices and HTTP client it starts to ``--other-cpus``; the others leave the scheduler alone,
except for the throughput row, which runs Home Assistant on one core (``_one_core``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict
import importlib
import json
import logging
import os
from pathlib import Path
import sys
import time
from typing import Any

from homeassistant.components.mqtt.models import DATA_MQTT
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_get_setup_timings

from custom_components.iotee.const import DOMAIN
from custom_components.iotee.engine import CommandEngine

from .broker import free_port, pin, publish_retained
from .capture import capture
from .hassenv import async_admin, async_boot, create_loop, write_yaml
from .history import measure_history
from .network import NETWORKS, Network, pin_threads
from .probe import GcTimes, LoopProbe, SlowCallbacks
from .queue_drain import PublishCounter, device_ids, measure_queue_drain
from .runtime import (
    WLTE_ID,
    RuntimeContext,
    RuntimeSizes,
    Simulator,
    engine_of,
    mqtt_nodelay,
    profile_bursts,
    run_latency,
    run_throughput,
    simulated_devices,
    wait_until,
)
from .what_if import match_identifiers_first


def _cpus(text: str | None) -> set[int] | None:
    return {int(cpu) for cpu in text.split(",")} if text else None


async def runtime_stage(args: argparse.Namespace, http_port: int) -> dict[str, Any]:
    """Rows 1 to 4 and 6 in one Home Assistant, under the network settings ``--network``."""
    sizes = RuntimeSizes(**json.loads(args.sizes))
    network = NETWORKS[args.network]
    measure = set(args.measure.split(","))
    host, port = args.broker.split(":")
    ha, other = _cpus(args.ha_cpus), _cpus(args.other_cpus)
    pinned = other if network.pin_ha else None
    booted = await async_boot(args.config)
    hass = booted.hass
    simulator = Simulator(
        (host, int(port)),
        simulated_devices(sizes.tp_devices),
        args.log,
        nodelay=network.devices_nodelay,
    )
    result: dict[str, Any] = {"network": asdict(network), "measured": sorted(measure)}
    # The queue drain's devices (configured only when it is measured) stay offline until it.
    offline = set(device_ids(sizes.queue_devices)) if "queue" in measure else set()
    try:
        await wait_until(lambda: bool(hass.config_entries.async_loaded_entries(DOMAIN)), 60, "hub")
        engine = engine_of(hass)
        if network.ha_nodelay:
            mqtt_nodelay(hass)
        token, context = await async_admin(hass)
        created = await hass.services.async_call(
            DOMAIN,
            "create_api_key",
            {"name": "benchmark", "role": "admin"},
            blocking=True,
            context=context,
            return_response=True,
        )
        assert created is not None
        ctx = RuntimeContext(hass, http_port, token, context, str(created["api_key"]), pinned)
        # The capture starts before the devices connect: their CONNECTs name them.
        async with capture(args.capture, int(port)):
            await simulator.start(pinned)
            await wait_until(
                lambda: all(
                    state.online is (hardware_id not in offline)
                    for hardware_id, state in engine.states.items()
                ),
                60,
                "devices online (the queue drain's offline)",
            )
            await asyncio.sleep(1.0)  # let the retained states settle
            if "latency" in measure:
                result["latency"] = await run_latency(ctx, sizes)
                if args.profile and network.name == "stock":
                    result["burst_profile"] = await profile_bursts(ctx, sizes, args.profile)
        if "throughput" in measure:
            async with _one_core(hass, network, ha, other, [args.broker_pid, simulator.pid]):
                profile = args.profile if network.name == "tuned" else None
                result["throughput"] = await run_throughput(ctx, sizes, profile)
        if "history" in measure:
            result["history"] = await _history(engine, sizes)
        if "queue" in measure:
            result["queue"] = await _queue_drain(engine, (host, int(port)), sorted(offline))
    finally:
        await simulator.stop()
        await hass.async_stop()
    return result


@asynccontextmanager
async def _one_core(
    hass: HomeAssistant,
    network: Network,
    ha: set[int] | None,
    other: set[int] | None,
    pids: list[int | None],
) -> AsyncIterator[None]:
    """Home Assistant on one core, the broker and the devices on the others, for the block.

    A stage pinned throughout (``tuned``) is left as it is.
    """
    if network.pin_ha or ha is None or other is None:
        yield
        return
    every = ha | other
    await hass.async_add_executor_job(pin_threads, ha)
    for pid in pids:
        if pid is not None:
            pin(pid, other)
    try:
        yield
    finally:
        await hass.async_add_executor_job(pin_threads, every)
        for pid in pids:
            if pid is not None:
                pin(pid, every)


async def _history(engine: CommandEngine, sizes: RuntimeSizes) -> dict[str, Any]:
    probe = LoopProbe(engine.hass.loop)
    probe.start()
    try:
        return await measure_history(
            engine,
            probe=probe,
            device=WLTE_ID,
            rows=sizes.history_rows,
            small=sizes.history_small,
            queries=sizes.history_queries,
            devices=sizes.history_devices,
        )
    finally:
        probe.stop()


async def _queue_drain(
    engine: CommandEngine, broker: tuple[str, int], hardware_ids: list[str]
) -> dict[str, Any]:
    """Row 6: the hub's offline devices get their queued commands once they say online.

    After the history row (which purges everything): its purge would count these commands.
    """
    counter = PublishCounter(*broker, hardware_ids)
    hass = engine.hass
    await hass.async_add_executor_job(counter.start)

    async def bring_online() -> None:
        await hass.async_add_executor_job(
            publish_retained,
            *broker,
            [(f"wlte/{hardware_id}/status", "online") for hardware_id in hardware_ids],
        )

    try:
        result = await measure_queue_drain(engine, hardware_ids, bring_online, counter.delivered)
    finally:
        await hass.async_add_executor_job(counter.stop)
    queued = result.pop("command_ids")
    counts = dict(counter.counts)
    result["published_once"] = sorted(counts) == sorted(queued) and set(counts.values()) <= {1}
    result["published"] = sum(counts.values())
    return result


def _iotee_entities(hass: HomeAssistant) -> tuple[int, int]:
    """Return how many IoTee entities exist and how many of them are available."""
    entity_ids = [
        entry.entity_id
        for entry in er.async_get(hass).entities.values()
        if entry.platform == DOMAIN
    ]
    available = sum(
        1
        for entity_id in entity_ids
        if (state := hass.states.get(entity_id)) is not None and state.state != "unavailable"
    )
    return len(entity_ids), available


@contextmanager
def _on_hub_setup(hook: Callable[[], None]) -> Iterator[None]:
    """Call ``hook`` when Home Assistant starts setting up the IoTee hub (its config entry)."""
    module = importlib.import_module(f"custom_components.{DOMAIN}")
    original = module.async_setup_entry

    async def setup_entry(hass: HomeAssistant, entry: Any) -> bool:
        hook()
        result: bool = await original(hass, entry)
        return result

    module.async_setup_entry = setup_entry
    try:
        yield
    finally:
        module.async_setup_entry = original


class _AllOnline:
    """Whether every device of the engine is online, polled often while thousands come in:
    each poll resumes at the first device not yet online (availability only goes online here),
    and the answer is yes only after one full pass finds every device online. The measuring
    must not cost the loop more than what it measures (a full scan per poll was about 4 % of
    the loop in a profile of 5,000 devices)."""

    def __init__(self, engine: CommandEngine) -> None:
        self._states = list(engine.states.values())  # every device is configured by now
        self._checked = 0

    def __call__(self) -> bool:
        states = self._states
        while self._checked < len(states) and states[self._checked].online:
            self._checked += 1
        return self._checked == len(states) and all(state.online for state in states)


async def boot_stage(args: argparse.Namespace) -> dict[str, Any]:
    """Row 5: boot, wait until IoTee and its devices are up, report the timings.

    The loop probe and the slowest callbacks are read twice: over the whole boot, and from the
    moment HA starts setting up the hub until every device's state is in (``until_online``).
    With ``--profile`` that second span is also profiled (pyinstrument, event-loop thread).
    """
    probe = LoopProbe(asyncio.get_running_loop())
    slow = SlowCallbacks(keep=15)
    profiler = _profiler(args.profile)
    hub: dict[str, Any] = {}
    collector = GcTimes()

    def hub_setup_starts() -> None:
        collector.start()
        hub["boot_stall_ms"] = probe.max_late * 1000
        hub["boot_slowest"] = slow.as_json()
        hub["at"] = time.monotonic()
        probe.max_late = 0.0
        slow.reset()
        if profiler is not None:
            profiler.start()

    probe.start()
    slow.start()
    stalls: dict[str, float] = {}
    started = time.monotonic()
    cpu_started = time.process_time()
    with _on_hub_setup(hub_setup_starts):
        booted = await async_boot(args.config)
    hass = booted.hass
    try:
        entries = hass.config_entries.async_entries(DOMAIN)
        await wait_until(
            lambda: all(entry.state is ConfigEntryState.LOADED for entry in entries),
            60,
            "hub loaded",
        )
        engine = engine_of(hass)
        client = hass.data[DATA_MQTT].client
        devices_in = _AllOnline(engine)
        await wait_until(
            lambda: (
                client.connected
                and all(
                    client.is_active_subscription(topic_filter)
                    and not client.is_pending_subscription(topic_filter)
                    for topic_filter in engine.subscription_filters
                )
                and devices_in()
            ),
            300,
            "subscriptions acknowledged and devices online",
            interval=0.005,
        )
        online_s = time.monotonic() - started
        cpu_s = time.process_time() - cpu_started
        stalls["until_online"] = max(probe.max_late, time.monotonic() - probe.due) * 1000
        stalls["before_hub"] = hub.get("boot_stall_ms", 0.0)
        slowest = slow.as_json()
        slow.stop()
        collector.stop()
        if profiler is not None:
            profiler.stop()
            _write_profile(profiler, args.profile, "startup")
        entities, available = _iotee_entities(hass)
        timings = async_get_setup_timings(hass)
        result = {
            "devices": len(engine.devices),
            "entities": entities,
            "entities_available": available,
            "setup_s": booted.setup_s,
            "start_s": booted.start_s,
            "boot_s": booted.setup_s + booted.start_s,
            "online_s": online_s,
            "cpu_s": cpu_s,
            "ha_identifiers_first": args.ha_identifiers_first,
            "hub_setup_at_s": hub.get("at", started) - started,
            "iotee_setup_s": timings.get(DOMAIN, 0.0),
            "mqtt_setup_s": timings.get("mqtt", 0.0),
            "stall_ms": stalls,
            "slowest": slowest,
            "gc": collector.as_json(),
            "wildcard_subscriptions": {
                # HA's client matches every message against each of them (its own attribute).
                "all": len(client._wildcard_subscriptions),
                "iotee": sum(1 for f in engine.subscription_filters if "+" in f or f.endswith("#")),
            },
            "slowest_before_hub": hub.get("boot_slowest", []),
        }
    finally:
        slow.stop()
        probe.stop()
        await hass.async_stop()
    return result


def _profiler(out_dir: Path | None) -> Any:
    if out_dir is None:
        return None
    from pyinstrument import Profiler

    return Profiler(interval=0.0005, async_mode="disabled")


def _write_profile(profiler: Any, out_dir: Path, name: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.txt").write_text(
        profiler.output_text(unicode=False, color=False, show_all=False)
    )
    profiler.last_session.save(str(out_dir / f"{name}.pyisession"))


def main(argv: list[str] | None = None) -> int:
    """Run one stage; write its results to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench.stage")
    parser.add_argument("stage", choices=["runtime", "boot"])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True, help="log of the simulated devices")
    parser.add_argument("--broker", help="HOST:PORT (runtime)")
    parser.add_argument("--broker-pid", type=int, help="the broker's process (runtime)")
    parser.add_argument("--sizes", default="{}", help="RuntimeSizes as JSON (runtime)")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="stock", help="(runtime)")
    parser.add_argument(
        "--measure",
        default="latency,throughput,history,queue",
        help="comma-separated: latency, throughput, history, queue (runtime)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="profile the bursts (stock), the throughput row (tuned) or the boot into this dir",
    )
    parser.add_argument("--capture", type=Path, help="tshark capture of the latency rows")
    parser.add_argument("--ha-cpus", help="Home Assistant's CPU, e.g. 0 (pinned when tuned)")
    parser.add_argument("--other-cpus", help="CPUs of the broker, devices and client, e.g. 1")
    parser.add_argument("--pin", action="store_true", help="pin this process to --ha-cpus now")
    parser.add_argument(
        "--ha-identifiers-first",
        action="store_true",
        help="boot with HA's MQTT client matching by subscription identifier first (row 5's"
        " what-if, bench/what_if.py)",
    )
    args = parser.parse_args(argv)
    if args.pin or (args.stage == "runtime" and NETWORKS[args.network].pin_ha):
        pin(0, _cpus(args.ha_cpus))
    http_port = free_port()
    write_yaml(args.config, http_port)
    loop = create_loop()
    try:
        if args.stage == "runtime":
            result = loop.run_until_complete(runtime_stage(args, http_port))
        else:
            if args.ha_identifiers_first:
                match_identifiers_first()
            result = loop.run_until_complete(boot_stage(args))
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
    args.out.write_text(json.dumps(result, indent=2))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Home Assistant's stopped; do not wait on stray non-daemon threads of its integrations.
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
