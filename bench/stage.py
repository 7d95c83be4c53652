"""One Home Assistant process of the benchmark (``python -m bench.stage runtime|boot ...``).

``runtime`` boots the prepared config directory and measures rows 1 to 4 in it; ``boot`` boots
one and measures its startup (row 5). Each runs in a fresh process and writes its raw results as
JSON to ``--out``. The process (Home Assistant with all its threads) is pinned to ``--ha-cpus``
(one core); the devices and the HTTP client it starts are pinned to ``--other-cpus``.
"""

from __future__ import annotations

import argparse
import asyncio
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

from .broker import free_port, pin
from .hassenv import async_admin, async_boot, create_loop, write_yaml
from .history import measure_history
from .probe import LoopProbe
from .runtime import (
    WLTE_ID,
    RuntimeContext,
    RuntimeSizes,
    Simulator,
    engine_of,
    mqtt_nodelay,
    run_rows_1_to_3,
    runtime_devices,
    wait_until,
)


def _cpus(text: str | None) -> set[int] | None:
    return {int(cpu) for cpu in text.split(",")} if text else None


async def runtime_stage(args: argparse.Namespace, http_port: int) -> dict[str, Any]:
    """Rows 1 to 4 in one Home Assistant."""
    sizes = RuntimeSizes(**json.loads(args.sizes))
    host, port = args.broker.split(":")
    other = _cpus(args.other_cpus)
    booted = await async_boot(args.config)
    hass = booted.hass
    simulator = Simulator((host, int(port)), runtime_devices(sizes.tp_devices), args.log)
    try:
        await wait_until(lambda: bool(hass.config_entries.async_loaded_entries(DOMAIN)), 60, "hub")
        engine = engine_of(hass)
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
        await simulator.start(other)
        await wait_until(
            lambda: all(state.online for state in engine.states.values()), 60, "devices online"
        )
        await asyncio.sleep(1.0)  # let the retained states settle
        result = await run_rows_1_to_3(
            RuntimeContext(hass, http_port, token, context, str(created["api_key"]), other),
            sizes,
        )
        probe = LoopProbe(hass.loop)
        probe.start()
        try:
            result["history"] = await measure_history(
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
    finally:
        await simulator.stop()
        await hass.async_stop()
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


async def boot_stage(args: argparse.Namespace) -> dict[str, Any]:
    """Row 5: boot, wait until IoTee and its devices are up, report the timings."""
    probe = LoopProbe(asyncio.get_running_loop())
    probe.start()
    stalls: dict[str, float] = {}
    started = time.monotonic()
    with probe.window(stalls, "boot"):
        booted = await async_boot(args.config)
    hass = booted.hass
    try:
        with probe.window(stalls, "until_online"):
            entries = hass.config_entries.async_entries(DOMAIN)
            await wait_until(
                lambda: all(entry.state is ConfigEntryState.LOADED for entry in entries),
                60,
                "hub loaded",
            )
            engine = engine_of(hass)
            client = hass.data[DATA_MQTT].client
            await wait_until(
                lambda: (
                    client.connected
                    and all(
                        client.is_active_subscription(topic_filter)
                        and not client.is_pending_subscription(topic_filter)
                        for topic_filter in engine.subscription_filters
                    )
                    and all(state.online for state in engine.states.values())
                ),
                60,
                "subscriptions acknowledged and devices online",
                interval=0.005,
            )
        online_s = time.monotonic() - started
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
            "iotee_setup_s": timings.get(DOMAIN, 0.0),
            "mqtt_setup_s": timings.get("mqtt", 0.0),
            "stall_ms": stalls,
        }
    finally:
        probe.stop()
        await hass.async_stop()
    return result


def main(argv: list[str] | None = None) -> int:
    """Run one stage; write its results to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench.stage")
    parser.add_argument("stage", choices=["runtime", "boot"])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True, help="log of the simulated devices")
    parser.add_argument("--broker", help="HOST:PORT (runtime)")
    parser.add_argument("--sizes", default="{}", help="RuntimeSizes as JSON (runtime)")
    parser.add_argument("--ha-cpus", help="CPUs of this process (Home Assistant), e.g. 0")
    parser.add_argument("--other-cpus", help="CPUs of the devices and the HTTP client, e.g. 1")
    args = parser.parse_args(argv)
    pin(0, _cpus(args.ha_cpus))
    http_port = free_port()
    write_yaml(args.config, http_port)
    loop = create_loop()
    try:
        if args.stage == "runtime":
            result = loop.run_until_complete(runtime_stage(args, http_port))
        else:
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
