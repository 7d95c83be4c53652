"""Turn the raw measurements into rows (baseline, IoTee, ratio, target), a table and the docs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
import os
from pathlib import Path
import platform
import re
import sqlite3
import statistics
import subprocess
from typing import Any

from homeassistant.const import __version__ as HA_VERSION

from .broker import find_mosquitto

README_START = "<!-- bench:table:start -->"
README_END = "<!-- bench:table:end -->"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    key: str
    measure: str
    unit: str
    baseline: float
    baseline_note: str
    ours: float
    ours_note: str
    ratio: float
    target: str
    met: bool | None
    """None: no target for this line (shown for context)."""


def _ratio(ours: float, baseline: float) -> float:
    return ours / baseline if baseline else float("inf")


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def build_rows(raw: dict[str, Any]) -> list[Row]:
    """Return every row of the table from the raw results of the stages."""
    rows: list[Row] = []
    runtime = raw["runtime"]
    latency = runtime["latency"]
    bare = latency["mqtt_publish"]
    bare_note = "HA `POST /api/services/mqtt/publish`"
    for kind, title in (
        ("iotee_send", "REST send, same HA token"),
        ("iotee_send_api_key", "REST send, `X-API-Key`"),
    ):
        for pct in ("p50", "p99"):
            ours = latency[kind][f"{pct}_ms"]
            base = bare[f"{pct}_ms"]
            rows.append(
                Row(
                    key=f"1.{kind}.{pct}",
                    measure=f"1. {title}, {pct}",
                    unit="ms",
                    baseline=base,
                    baseline_note=bare_note,
                    ours=ours,
                    ours_note="`POST /api/iotee/devices/{id}/commands`",
                    ratio=_ratio(ours, base),
                    target="≤ 1.3x baseline",
                    met=ours <= 1.3 * base,
                )
            )
    confirmed = latency["wlte_confirmed"]
    for pct in ("p50", "p99"):
        ours = confirmed[f"{pct}_ms"]
        base = bare[f"{pct}_ms"]
        rows.append(
            Row(
                key=f"2.wlte_confirmed.{pct}",
                measure=f"2. Confirmed round trip (WLTE, sync wait), {pct}",
                unit="ms",
                baseline=base,
                baseline_note="bare publish of row 1",
                ours=ours,
                ours_note="device answered (SUCCESS)",
                ratio=_ratio(ours, base),
                target="≤ baseline + 3 ms" if pct == "p50" else "",
                met=ours <= base + 3.0 if pct == "p50" else None,
            )
        )
    throughput = runtime["throughput"]
    base_tp = throughput["baseline"]["per_s"]
    ours_tp = throughput["iotee"]["per_s"]
    rows.append(
        Row(
            key="3.throughput",
            measure="3. Throughput, confirmed commands per second (HA on one core)",
            unit="1/s",
            baseline=base_tp,
            baseline_note=(
                f"`mqtt.publish` + device answer, HA CPU "
                f"{throughput['baseline']['ha_cpu_share']:.0%}"
            ),
            ours=ours_tp,
            ours_note=(
                f"`iotee.relay_command` wait, persisted, HA CPU "
                f"{throughput['iotee']['ha_cpu_share']:.0%}"
            ),
            ratio=_ratio(ours_tp, base_tp),
            target="≥ 1,000/s",
            met=ours_tp >= 1000,
        )
    )
    history = runtime["history"]
    small, big = history["baseline"], history["ours"]
    small_note = f"{small['rows']:,} stored"
    big_note = f"{big['rows']:,} stored"
    for query, title in (("device_history", "Device history"), ("all_commands", "All commands")):
        for pct in ("p50", "p99"):
            ours = big[query][f"{pct}_ms"]
            base = small[query][f"{pct}_ms"]
            rows.append(
                Row(
                    key=f"4.{query}.{pct}",
                    measure=f"4. {title}, limit 100, {pct}",
                    unit="ms",
                    baseline=base,
                    baseline_note=small_note,
                    ours=ours,
                    ours_note=big_note,
                    ratio=_ratio(ours, base),
                    target="< 5 ms" if pct == "p50" else "",
                    met=ours < 5.0 if pct == "p50" else None,
                )
            )
    per_k_small = small["purge_s"] / max(small["purged"], 1) * 1000 * 1000
    per_k_big = big["purge_s"] / max(big["purged"], 1) * 1000 * 1000
    rows.append(
        Row(
            key="4.purge",
            measure="4. Purge everything, per 1,000 commands",
            unit="ms",
            baseline=per_k_small,
            baseline_note=f"{small['purged']:,} purged",
            ours=per_k_big,
            ours_note=f"{big['purged']:,} purged in {big['purge_s']:.2f} s",
            ratio=_ratio(per_k_big, per_k_small),
            target="all in < 5 s",
            met=big["purge_s"] < 5.0 and big["purged"] == big["rows"],
        )
    )
    rows.append(
        Row(
            key="4.bytes",
            measure="4. Bytes per stored command",
            unit="B",
            baseline=history["json_bytes_per_command"],
            baseline_note="the record as API JSON",
            ours=history["bytes_per_command"],
            ours_note=f"SQLite file, {history['db_bytes'] / 1e6:,.0f} MB",
            ratio=_ratio(history["bytes_per_command"], history["json_bytes_per_command"]),
            target="",
            met=None,
        )
    )
    idle = big["stall_ms"]["idle"]
    for phase, title in (
        ("device_history", "device-history queries"),
        ("all_commands", "all-commands queries"),
        ("purge", "the purge"),
    ):
        stall = big["stall_ms"][phase]
        rows.append(
            Row(
                key=f"4.stall.{phase}",
                measure=f"4. Longest event-loop stall during {title}",
                unit="ms",
                baseline=idle,
                baseline_note="idle loop, same probe",
                ours=stall,
                ours_note=big_note,
                ratio=_ratio(stall, idle),
                target="≤ 50 ms",
                met=stall <= 50.0,
            )
        )
    startup = raw["startup"]
    base_boots, our_boots = startup["baseline"], startup["iotee"]
    entities = _median([boot["entities"] for boot in our_boots])
    for metric, title, target in (
        ("online_s", "HA start until IoTee and every device's state are in", True),
        ("iotee_setup_s", "IoTee setup time as HA reports it", True),
        ("boot_s", "HA start to running", False),
    ):
        base = _median([boot[metric] for boot in base_boots])
        ours = _median([boot[metric] for boot in our_boots])
        rows.append(
            Row(
                key=f"5.{metric}",
                measure=f"5. {title}",
                unit="s",
                baseline=base,
                baseline_note="hub without devices",
                ours=ours,
                ours_note=f"{startup['devices']} devices, {entities:,.0f} entities",
                ratio=_ratio(ours, base),
                target="≤ baseline + 2 s" if target else "",
                met=ours <= base + 2.0 if target else None,
            )
        )
    stall_base = _median([boot["stall_ms"]["until_online"] for boot in base_boots])
    stall_ours = _median([boot["stall_ms"]["until_online"] for boot in our_boots])
    rows.append(
        Row(
            key="5.stall",
            measure="5. Longest loop stall from hub setup until devices are in",
            unit="ms",
            baseline=stall_base,
            baseline_note="hub without devices",
            ours=stall_ours,
            ours_note=f"{startup['devices']} devices",
            ratio=_ratio(stall_ours, stall_base),
            target="",
            met=None,
        )
    )
    return rows


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown_table(rows: list[Row]) -> str:
    """Return the rows as a markdown table."""
    lines = [
        "| measure | baseline | IoTee | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = "—" if row.met is None else ("✅" if row.met else "❌")
        lines.append(
            f"| {row.measure} | {_fmt(row.baseline)} {row.unit} ({row.baseline_note}) "
            f"| {_fmt(row.ours)} {row.unit} ({row.ours_note}) | {row.ratio:.2f}x "
            f"| {row.target or '—'} | {met} |"
        )
    return "\n".join(lines)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    """Describe the machine the benchmark ran on."""
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    try:
        version = subprocess.run(
            [find_mosquitto(), "-h"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.splitlines()[0]
    except OSError, IndexError, RuntimeError, subprocess.SubprocessError:
        version = "unknown"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else platform.processor() or "unknown",
        "memory_gib": round(int(meminfo.group(1)) / 1024 / 1024, 1) if meminfo else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "homeassistant": HA_VERSION,
        "sqlite": sqlite3.sqlite_version,
        "mosquitto": version,
    }


def machine_line(info: dict[str, Any]) -> str:
    """Return the machine as one markdown line."""
    return (
        f"{info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB RAM, "
        f"{info['os']}; Python {info['python']}, Home Assistant {info['homeassistant']}, "
        f"SQLite {info['sqlite']}, {info['mosquitto']}"
    )


def rows_json(rows: list[Row]) -> list[dict[str, Any]]:
    """Return the rows as JSON-ready dicts."""
    return [asdict(row) for row in rows]


def summary_line(rows: list[Row]) -> str:
    """Return how many targets were met."""
    judged = [row for row in rows if row.met is not None]
    met = sum(1 for row in judged if row.met)
    missed = ", ".join(row.measure for row in judged if not row.met)
    return f"{met} of {len(judged)} targets met" + (f"; missed: {missed}" if missed else "")
