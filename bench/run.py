"""The benchmark's driver: broker(s), Home Assistant stage processes, results, table, docs.

``python -m bench`` (what ``scripts/bench`` runs) measures everything at full size, prints the
JSON result and the markdown table, writes the JSON to ``bench/results/latest.json`` and
regenerates ``docs/performance.md`` (and README's table between its bench markers, when present).
``--quick`` runs the same machinery at tiny sizes (the smoke test uses it).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
import datetime as dt
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from custom_components.iotee.const import CONF_COMMAND_QOS

from .broker import Broker, publish_retained
from .docs import write_docs
from .hassenv import BENCH_OPTIONS, REPO, write_config
from .network import NETWORKS, Network
from .queue_drain import device_ids as queue_device_ids
from .report import build_rows, machine, markdown_tables, rows_json, summary_line
from .runtime import RuntimeSizes, runtime_devices
from .startup import retained_messages, startup_devices

RESULTS = REPO / "bench" / "results" / "latest.json"
QUICK = RuntimeSizes(
    spaced_rounds=10,
    spaced_warmup=2,
    bursts=2,
    burst_size=4,
    burst_warmup=1,
    tp_commands=64,
    tp_concurrency=8,
    tp_devices=1,
    history_rows=1000,
    history_small=100,
    history_queries=10,
    history_devices=10,
    queue_devices=10,
)
SECTIONS = ("stock", "broker", "devices", "tuned", "qos1", "startup")
STAGE_MEASURES = {
    "stock": "latency,throughput,history,queue",
    "broker": "latency",
    "devices": "latency",
    "tuned": "latency,throughput",
    "qos1": "latency",
}


def _cpus() -> tuple[set[int] | None, set[int] | None]:
    """CPU 0 for Home Assistant, the others for the broker, devices and client.

    None, None on a single CPU (no pinning at all).
    """
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return {available[0]}, set(available[1:])


def _cpu_arg(cpus: set[int] | None) -> list[str]:
    return [] if cpus is None else [",".join(map(str, sorted(cpus)))]


def _stage(workdir: Path, name: str, args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``python -m bench.stage ARGS`` and return the JSON it wrote."""
    out = workdir / f"{name}.json"
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.stage", *args, "--out", str(out)],
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"stage {name} failed ({proc.returncode}); its log ends:\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_runtime(
    workdir: Path,
    sizes: RuntimeSizes,
    network: Network,
    *,
    ha: set[int] | None,
    other: set[int] | None,
    capture: Path | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Rows 1 to 4 and 6 (as far as ``STAGE_MEASURES`` says) in one Home Assistant.

    With the queue drain (row 6) the hub also has its devices, said offline (retained) before
    Home Assistant starts.
    """
    config = workdir / f"runtime-{network.name}"
    # The broker is pinned only where Home Assistant is (the tuned stage); the throughput row
    # of the others pins it for its own duration.
    cpus = other if network.pin_ha else None
    measures = STAGE_MEASURES[network.name]
    queued = sizes.queue_devices if "queue" in measures.split(",") else 0
    with Broker(workdir / f"broker-{network.name}", cpus, nodelay=network.broker_nodelay) as broker:
        write_config(
            config,
            broker=(broker.host, broker.port),
            devices=runtime_devices(sizes.tp_devices, queued),
            options=BENCH_OPTIONS | {CONF_COMMAND_QOS: network.command_qos},
        )
        if queued:
            publish_retained(
                broker.host,
                broker.port,
                [(f"wlte/{device}/status", "offline") for device in queue_device_ids(queued)],
            )
        args = [
            "runtime",
            "--network",
            network.name,
            "--measure",
            measures,
            "--config",
            str(config),
            "--log",
            str(workdir / f"devices-{network.name}.log"),
            "--broker",
            f"{broker.host}:{broker.port}",
            "--broker-pid",
            str(broker.pid),
            "--sizes",
            json.dumps(asdict(sizes)),
        ]
        if ha is not None:
            args += ["--ha-cpus", *_cpu_arg(ha), "--other-cpus", *_cpu_arg(other)]
        if profile is not None:
            args += ["--profile", str(profile)]
        if capture is not None:
            args += ["--capture", str(capture)]
        return _stage(workdir, f"runtime-{network.name}", args, timeout=1800)


def run_startup(
    workdir: Path, *, count: int, repeats: int, warmup: bool, profile: Path | None = None
) -> dict[str, Any]:
    """Row 5: boots of the hub with ``count`` devices and with none, alternating (not pinned).

    With ``profile``, one more boot of the hub with devices, profiled and not counted.
    """
    variants = {"baseline": [], "iotee": startup_devices(count)}
    brokers: list[Broker] = []
    configs: dict[str, Path] = {}
    results: dict[str, Any] = {
        "devices": count,
        "expected_entities": sum(device.entity_count for device in variants["iotee"]),
        "baseline": [],
        "iotee": [],
        "what_if": [],
    }
    try:
        for name, devices in variants.items():
            broker = Broker(workdir / f"broker-{name}")
            broker.start()
            brokers.append(broker)
            if devices:
                publish_retained(broker.host, broker.port, retained_messages(devices))
            configs[name] = workdir / f"startup-{name}"
            write_config(configs[name], broker=(broker.host, broker.port), devices=devices)
        for round_no in range(-1 if warmup else 0, repeats):
            for name, config in configs.items():
                log = workdir / "boot-devices.log"
                args = ["boot", "--config", str(config), "--log", str(log)]
                boot = _stage(workdir, f"boot-{name}-{round_no}", args, timeout=900)
                if round_no >= 0:
                    results[name].append(boot)
            if round_no >= 0 and count:
                # The same hub, HA's matching changed in that process (bench/what_if.py).
                args = ["boot", "--config", str(configs["iotee"]), "--log", str(log)]
                args.append("--ha-identifiers-first")
                boot = _stage(workdir, f"boot-what-if-{round_no}", args, timeout=900)
                results["what_if"].append(boot)
        if profile is not None:
            log = workdir / "boot-devices.log"
            args = ["boot", "--config", str(configs["iotee"]), "--log", str(log)]
            args += ["--profile", str(profile)]
            results["profiled"] = _stage(workdir, "boot-profiled", args, timeout=900)
    finally:
        for broker in brokers:
            broker.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and write the results."""
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--rows", type=int, help="stored commands for row 4 (1,000,000)")
    parser.add_argument("--rounds", type=int, help="spaced requests of each kind (200)")
    parser.add_argument("--bursts", type=int, help="bursts of 10 of each kind (40)")
    parser.add_argument("--commands", type=int, help="commands per throughput run (4,000)")
    parser.add_argument("--devices", type=int, help="devices for row 5 (5,000)")
    parser.add_argument(
        "--queue-devices", type=int, help="offline devices for row 6, 10 commands each (100)"
    )
    parser.add_argument("--repeats", type=int, help="measured boots per variant, row 5 (3)")
    parser.add_argument(
        "--only",
        help=f"comma-separated sections to run ({', '.join(SECTIONS)}); implies --no-docs",
    )
    parser.add_argument(
        "--capture",
        type=Path,
        help="tshark captures of the broker's port during each stage's latency rows, as"
        " FILE-stock.EXT etc. (python -m bench.pcap FILE PORT reads one)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="pyinstrument reports of rows 1's bursts (stock), row 3 (tuned) and row 5 into DIR",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON result ({RESULTS})")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite docs/performance.md and README"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else RuntimeSizes()
    if args.rows is not None:
        sizes = replace(sizes, history_rows=args.rows)
    if args.rounds is not None:
        sizes = replace(sizes, spaced_rounds=args.rounds)
    if args.bursts is not None:
        sizes = replace(sizes, bursts=args.bursts)
    if args.commands is not None:
        sizes = replace(sizes, tp_commands=args.commands)
    if args.queue_devices is not None:
        sizes = replace(sizes, queue_devices=args.queue_devices)
    devices = args.devices if args.devices is not None else (5 if args.quick else 5000)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    sections = SECTIONS if args.only is None else tuple(args.only.split(","))
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    partial = set(sections) != set(SECTIONS)

    started = time.monotonic()
    load_start = list(os.getloadavg())
    if load_start[0] > 0.5:
        print(
            f"bench: warning: load average {load_start[0]:.2f} - something else is running;"
            " its CPU use shows in the numbers",
            file=sys.stderr,
            flush=True,
        )
    ha, other = _cpus()
    workdir = Path(tempfile.mkdtemp(prefix="iotee-bench-"))
    print(f"bench: work directory {workdir}", file=sys.stderr, flush=True)
    raw: dict[str, Any] = {}
    try:
        for name in ("stock", "broker", "devices", "tuned", "qos1"):
            if name not in sections:
                continue
            network = NETWORKS[name]
            numbers = "1-4, 6" if "queue" in STAGE_MEASURES[name] else "1-4"
            print(f"bench: rows {numbers}, {network.title}", file=sys.stderr, flush=True)
            raw[name] = run_runtime(
                workdir,
                sizes,
                network,
                ha=ha,
                other=other,
                capture=(
                    None
                    if args.capture is None
                    else args.capture.with_name(f"{args.capture.stem}-{name}{args.capture.suffix}")
                ),
                profile=args.profile if name in ("stock", "tuned") else None,
            )
        if "startup" in sections:
            print(f"bench: row 5 (startup, {devices} devices)", file=sys.stderr, flush=True)
            raw["startup"] = run_startup(
                workdir, count=devices, repeats=repeats, warmup=not args.quick, profile=args.profile
            )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = build_rows(raw)
    info = machine()
    result = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "quick": args.quick,
        "sections": list(sections),
        "machine": info,
        "pinning": {
            "home_assistant": sorted(ha) if ha else None,
            "broker_devices_client": sorted(other) if other else None,
            "when": "tuned stage throughout; the throughput row of the stock stage",
        },
        "load_average": {"start": load_start, "end": list(os.getloadavg())},
        "sizes": asdict(sizes) | {"startup_devices": devices, "startup_repeats": repeats},
        "summary": summary_line(rows),
        "rows": rows_json(rows),
        "raw": raw,
    }
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    print()
    print(markdown_tables(rows, raw))
    print()
    print(result["summary"])
    if not args.no_docs and not partial:
        for written in write_docs(result, rows):
            print(f"bench: wrote {written}", file=sys.stderr)
    return 0
