"""Turn the raw measurements into rows (baseline, IoTee, ratio, target), a table and the docs."""

from __future__ import annotations

from collections.abc import Callable
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
from .queue_drain import STALL_LIMIT_MS, within_limit

README_START = "<!-- bench:table:start -->"
README_END = "<!-- bench:table:end -->"


TABLES = {
    "stock": "Stock broker (headline): mosquitto's default configuration, no socket option"
    " touched, Home Assistant not pinned (one core for row 3)",
    "network": "What each network setting buys: every request of rows 1-2, p50 / p99 in ms (and"
    " the share over 10 ms), on the stock stack and with Nagle's algorithm turned off step by"
    " step - the broker (`set_tcp_nodelay true`), then the devices, then HA's own MQTT socket -"
    " and, last, the broker setting with IoTee's hub option Command QoS 0 (devices untouched)",
}
"""The tables, in the order they are shown; ``stock`` is the one the targets judge."""

PATTERNS = {"spaced": "50 ms apart", "burst": "bursts of 10"}
SENDS = (
    ("iotee_send_api_key", "`X-API-Key`"),
    ("iotee_send", "HA token"),
)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a table."""

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
    table: str = "stock"


def _ratio(ours: float, baseline: float) -> float:
    return ours / baseline if baseline else float("inf")


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _within(ratio: float | None) -> tuple[str, Callable[[float, float], bool] | None]:
    if ratio is None:
        return "", None
    return f"≤ {ratio:g}x baseline", lambda ours, base: ours <= ratio * base


_PUBLISH = "HA `POST /api/services/mqtt/publish`"
_SEND = "`POST /api/iotee/devices/{id}/commands`"


def _latency_row(  # noqa: PLR0917 - one positional per column of the row
    table: str,
    key: str,
    measure: str,
    base: tuple[float, str],
    ours: tuple[float, str],
    target: tuple[str, Callable[[float, float], bool] | None] = ("", None),
) -> Row:
    text, check = target
    return Row(
        key=key,
        measure=measure,
        unit="ms",
        baseline=base[0],
        baseline_note=base[1],
        ours=ours[0],
        ours_note=ours[1],
        ratio=_ratio(ours[0], base[0]),
        target=text,
        met=None if check is None else check(ours[0], base[0]),
        table=table,
    )


def latency_rows(table: str, latency: dict[str, Any], *, judged: bool) -> list[Row]:
    """Rows 1 and 2 of one stage: sends vs ``mqtt.publish`` QoS 0, the WLTE round trip vs QoS 1."""
    rows: list[Row] = []
    prefix = "" if table == "stock" else f"{table}."
    send_targets = {
        ("spaced", "p50", "iotee_send_api_key"): 1.1,
        ("spaced", "p50", "iotee_send"): 1.2,
        ("burst", "p50", "iotee_send_api_key"): 1.3,
        ("burst", "p50", "iotee_send"): 1.3,
        ("burst", "p99", "iotee_send_api_key"): 2.0,
        ("burst", "p99", "iotee_send"): 2.0,
    }
    for pattern, how in PATTERNS.items():
        measured = latency[pattern]
        qos0, qos1 = measured["mqtt_publish_qos0"], measured["mqtt_publish_qos1"]
        for pct in ("p50", "p99"):
            base = (qos0[f"{pct}_ms"], f"{_PUBLISH} QoS 0")
            for kind, auth in SENDS:
                ratio = send_targets.get((pattern, pct, kind)) if judged else None
                rows.append(
                    _latency_row(
                        table,
                        f"{prefix}1.{pattern}.{kind}.{pct}",
                        f"1. REST send, {auth}, {how}, {pct}",
                        base,
                        (measured[kind][f"{pct}_ms"], _over(measured[kind], _SEND)),
                        _within(ratio),
                    )
                )
            rows.append(
                _latency_row(
                    table,
                    f"{prefix}1.{pattern}.mqtt_publish_qos1.{pct}",
                    f"1. HA's own QoS 1 publish, {how}, {pct}",
                    base,
                    (qos1[f"{pct}_ms"], _over(qos1, f"{_PUBLISH} QoS 1")),
                )
            )
        for pct in ("p50", "p99"):
            confirmed = measured["wlte_confirmed"]
            judge = judged and pattern == "burst" and pct == "p50"
            rows.append(
                _latency_row(
                    table,
                    f"{prefix}2.{pattern}.wlte_confirmed.{pct}",
                    f"2. WLTE confirmed round trip, {how} over 8 relays, {pct}",
                    (qos1[f"{pct}_ms"], f"{_PUBLISH} QoS 1"),
                    (confirmed[f"{pct}_ms"], _over(confirmed, "device answered SUCCESS")),
                    (
                        ("≤ baseline + 2 ms", lambda ours, base: ours <= base + 2.0)
                        if judge
                        else ("", None)
                    ),
                )
            )
    return rows


def _over(summary: dict[str, Any], note: str) -> str:
    """``note`` and how many requests took more than 10 ms, when any did."""
    over = int(summary.get("over_10ms", 0))
    return note if not over else f"{note}; {over} of {summary['n']} over 10 ms"


def _cpu(side: dict[str, Any]) -> str:
    """HA's CPU share during a throughput side and its CPU time per confirmed command."""
    per_command_ms = side["ha_cpu_share"] / side["per_s"] * 1000
    return f"HA CPU {side['ha_cpu_share']:.0%}, {per_command_ms:.2f} ms CPU per command"


NETWORK_KINDS = (
    ("mqtt_publish_qos0", "HA's `mqtt.publish` QoS 0"),
    ("mqtt_publish_qos1", "HA's `mqtt.publish` QoS 1"),
    ("iotee_send_api_key", "REST send, `X-API-Key`"),
    ("iotee_send", "REST send, HA token"),
    ("wlte_confirmed", "WLTE confirmed round trip"),
)
NETWORK_TITLES = {
    "broker": "`set_tcp_nodelay true`",
    "devices": "+ devices' Nagle off",
    "tuned": "+ HA's MQTT socket Nagle off, HA pinned",
    "qos1": "`set_tcp_nodelay true`, IoTee's command QoS 1",
}


def network_rows(stock: dict[str, Any], others: dict[str, dict[str, Any]]) -> list[Row]:
    """Each request on the stock stack (baseline) against each tuned network setting."""
    rows: list[Row] = []
    for network, latency in others.items():
        for pattern, how in PATTERNS.items():
            for kind, title in NETWORK_KINDS:
                for pct in ("p50", "p99"):
                    before, after = stock[pattern][kind], latency[pattern][kind]
                    rows.append(
                        _latency_row(
                            "network",
                            f"network.{network}.{pattern}.{kind}.{pct}",
                            f"{title}, {how}, {pct}: {NETWORK_TITLES[network]}",
                            (before[f"{pct}_ms"], _over(before, "stock stack")),
                            (after[f"{pct}_ms"], _over(after, NETWORK_TITLES[network])),
                        )
                    )
    return rows


def network_matrix(raw: dict[str, Any]) -> str:
    """The latency kinds under every network setting of the run: p50 / p99 in ms."""
    networks = [name for name in ("stock", *NETWORK_TITLES) if name in raw]
    titles = {"stock": "stock stack", **NETWORK_TITLES}
    lines = [
        "| request | pattern | " + " | ".join(titles[name] for name in networks) + " |",
        "|---|---|" + "---|" * len(networks),
    ]
    for kind, title in NETWORK_KINDS:
        for pattern, how in PATTERNS.items():
            cells = []
            for name in networks:
                summary = raw[name]["latency"][pattern][kind]
                over = int(summary.get("over_10ms", 0))
                cell = f"{_fmt(summary['p50_ms'])} / {_fmt(summary['p99_ms'])}"
                cells.append(cell + (f" ({over / summary['n']:.0%} > 10 ms)" if over else ""))
            lines.append(f"| {title} | {how} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def throughput_row(
    table: str, throughput: dict[str, Any], *, judged: bool, key: str, measure: str
) -> Row:
    """Row 3: confirmed commands per second, HA on one core, against bare ``mqtt.publish``."""
    base_tp = throughput["baseline"]["per_s"]
    ours_tp = throughput["iotee"]["per_s"]
    return Row(
        key=key,
        measure=measure,
        unit="1/s",
        baseline=base_tp,
        baseline_note=f"`mqtt.publish` + device answer, {_cpu(throughput['baseline'])}",
        ours=ours_tp,
        ours_note=f"`iotee.relay_command` wait, persisted, {_cpu(throughput['iotee'])}",
        ratio=_ratio(ours_tp, base_tp),
        target="≥ 0.6x baseline" if judged else "",
        met=ours_tp >= 0.6 * base_tp if judged else None,
        table=table,
    )


def history_rows(history: dict[str, Any]) -> list[Row]:
    """Row 4: queries, purge, size and loop stalls at 1,000,000 stored against 1,000."""
    rows: list[Row] = []
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
                    target="≤ 1.5x baseline" if pct == "p50" else "",
                    met=ours <= 1.5 * base if pct == "p50" else None,
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
            target="≤ 1.5x baseline, all purged",
            met=per_k_big <= 1.5 * per_k_small and big["purged"] == big["rows"],
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
    return rows


def queue_drain_row(queue: dict[str, Any]) -> Row:
    """Row 6: the longest loop stall while the queued commands of offline devices go out as the
    devices come back, against the idle loop; met only if every command went out exactly once."""
    commands, devices = queue["commands"], queue["devices"]
    delivered = queue.get("delivered", commands)
    once = "" if queue.get("published_once", True) else ", not each exactly once"
    return Row(
        key="6.queue_drain.stall",
        measure=f"6. Longest loop stall while {commands:,} queued commands go out to {devices:,}"
        " devices back online at once",
        unit="ms",
        baseline=queue["idle_stall_ms"],
        baseline_note="idle loop, same probe",
        ours=queue["max_stall_ms"],
        ours_note=f"{delivered:,} of {commands:,} delivered{once} in {queue['drain_s']:.2f} s",
        ratio=_ratio(queue["max_stall_ms"], queue["idle_stall_ms"]),
        target=f"≤ {STALL_LIMIT_MS:g} ms, all {commands:,} delivered",
        met=within_limit(queue),
    )


def startup_rows(startup: dict[str, Any]) -> list[Row]:
    """Row 5: the hub with many devices against the hub with none."""
    base_boots, our_boots = startup["baseline"], startup["iotee"]
    entities = _median([boot["entities"] for boot in our_boots])
    note = f"{startup['devices']:,} devices, {entities:,.0f} entities"
    expected = startup.get("expected_entities", entities)
    if entities < expected:
        # HA 2026.10 adds at most 10,000 enabled entities per config entry (the hub).
        note += f" of {expected:,} (HA's limit per config entry)"

    def row(
        key: str,
        title: str,
        unit: str,
        values: tuple[float, float],
        ours_note: str,
        *,
        judged: bool = False,
    ) -> Row:
        base, ours = values
        return Row(
            key=f"5.{key}",
            measure=f"5. {title}",
            unit=unit,
            baseline=base,
            baseline_note="hub without devices",
            ours=ours,
            ours_note=ours_note,
            ratio=_ratio(ours, base),
            target="≤ baseline + 5 s" if judged else "",
            met=ours <= base + 5.0 if judged else None,
        )

    def median_of(boots: list[dict[str, Any]], metric: str) -> float:
        return _median([boot[metric] for boot in boots])

    rows = [
        row(
            metric,
            title,
            "s",
            (median_of(base_boots, metric), median_of(our_boots, metric)),
            note,
            judged=judged,
        )
        for metric, title, judged in (
            ("online_s", "HA start until IoTee and every device's state are in", True),
            ("iotee_setup_s", "IoTee setup time as HA reports it", False),
            ("boot_s", "HA start to running", False),
        )
    ]
    if all("cpu_s" in boot for boot in (*base_boots, *our_boots)):
        rows.append(
            row(
                "cpu_s",
                "HA's CPU time until IoTee and every device's state are in",
                "s",
                (median_of(base_boots, "cpu_s"), median_of(our_boots, "cpu_s")),
                f"{note}; every thread of HA's process",
            )
        )
    if what_if := startup.get("what_if"):
        rows.append(
            row(
                "what_if",
                "What-if, HA's change: HA start until every state is in, HA's MQTT client"
                " checking the broker's subscription identifier before its matcher",
                "s",
                (median_of(base_boots, "online_s"), median_of(what_if, "online_s")),
                f"{note}; bench/what_if.py, not IoTee's change",
            )
        )
    stall_base = _median([boot["stall_ms"]["until_online"] for boot in base_boots])
    stall_ours = _median([boot["stall_ms"]["until_online"] for boot in our_boots])
    slowest = our_boots[0].get("slowest", [])
    where = f"; longest: {slowest[0]['what']}" if slowest else ""
    rows.append(
        row(
            "stall",
            "Longest loop stall from hub setup until devices are in",
            "ms",
            (stall_base, stall_ours),
            f"{startup['devices']:,} devices{where}",
        )
    )
    return rows


def build_rows(raw: dict[str, Any]) -> list[Row]:
    """Return every row of the tables from the raw results of the stages that ran."""
    rows: list[Row] = []
    stock = raw.get("stock")
    if stock is not None:
        rows += latency_rows("stock", stock["latency"], judged=True)
        rows.append(
            throughput_row(
                "stock",
                stock["throughput"],
                judged=False,
                key="3.throughput.stock",
                measure="3. Throughput, confirmed commands/s, HA on one core, stock stack",
            )
        )
    tuned = raw.get("tuned")
    if tuned is not None:
        # Tracking's CPU cost: on a stock stack delayed ACKs bound both sides long before the
        # CPU does, so the target judges the tuned stack, where the CPU is the bottleneck.
        rows.append(
            throughput_row(
                "stock",
                tuned["throughput"],
                judged=True,
                key="3.throughput",
                measure="3. Throughput, confirmed commands/s, HA on one core, tuned stack"
                " (CPU-bound: tracking's cost)",
            )
        )
    if stock is not None:
        rows += history_rows(stock["history"])
    if "startup" in raw:
        rows += startup_rows(raw["startup"])
    if stock is not None and "queue" in stock:
        rows.append(queue_drain_row(stock["queue"]))
    others = {name: raw[name]["latency"] for name in NETWORK_TITLES if name in raw}
    if stock is not None and others:
        rows += network_rows(stock["latency"], others)
    return rows


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown_tables(
    rows: list[Row], raw: dict[str, Any] | None = None, heading: str = "###"
) -> str:
    """Return the rows as one markdown table per ``TABLES`` entry, each under its heading.

    The network table is the compact matrix of ``network_matrix`` (from ``raw``).
    """
    parts = []
    for table, title in TABLES.items():
        chosen = [row for row in rows if row.table == table]
        if not chosen:
            continue
        body = network_matrix(raw) if table == "network" and raw else markdown_table(chosen)
        parts.append(f"{heading} {title}\n\n{body}")
    return "\n\n".join(parts)


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
    """Return how many targets of the headline (stock) table were met."""
    judged = [row for row in rows if row.met is not None and row.table == "stock"]
    met = sum(1 for row in judged if row.met)
    missed = ", ".join(row.measure for row in judged if not row.met)
    return f"{met} of {len(judged)} targets met" + (f"; missed: {missed}" if missed else "")
