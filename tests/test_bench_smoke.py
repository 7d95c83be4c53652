"""The benchmark's machinery at tiny sizes, so that ``scripts/bench`` cannot silently rot.

It runs exactly what ``scripts/bench`` runs (``python -m bench``: real brokers, real Home Assistant
stage processes under each network setting, simulated devices, the HTTP client) with
``--quick``. Nothing here judges a time: the benchmark's numbers are ratios for people to read,
not assertions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
import subprocess
import sys

from homeassistant.core import HomeAssistant

REPO = Path(__file__).resolve().parent.parent


def _run_quick(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-docs", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )


async def test_bench_quick_run_measures_every_row(hass: HomeAssistant, tmp_path: Path) -> None:
    """Every row of every table gets a baseline, a measurement and a ratio; the JSON is printed."""
    out = tmp_path / "quick.json"
    proc = await hass.async_add_executor_job(_run_quick, out)
    assert proc.returncode == 0, proc.stderr[-4000:]

    result = json.loads(out.read_text())
    assert json.loads(proc.stdout[: proc.stdout.index("\n}\n") + 2]) == result
    assert "| measure | baseline | IoTee | ratio | target | met |" in proc.stdout
    assert result["quick"] is True
    assert {"nproc", "cpu_model", "memory_gib", "python", "homeassistant"} <= set(result["machine"])

    rows = {row["key"]: row for row in result["rows"]}
    prefixes = ("1.", "2.", "3.", "4.", "5.", "6.", "network.")
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in rows), prefix
    for row in rows.values():
        for field in ("baseline", "ours", "ratio"):
            assert math.isfinite(row[field]), (row["key"], field)
            assert row[field] >= 0, (row["key"], field)
        assert row["met"] in (True, False, None)
        assert (row["met"] is None) == (row["target"] == ""), row["key"]
    # Targets are stated against a baseline of the same run, never as absolute times.
    for row in rows.values():
        target = row["target"]
        assert target in ("", "≤ 50 ms") or "baseline" in target or target.startswith("≤ 50 ms,")

    raw = result["raw"]
    # The headline is measured as users run it: no socket option, Home Assistant not pinned.
    assert raw["stock"]["network"] == {
        "name": "stock",
        "title": raw["stock"]["network"]["title"],
        "broker_nodelay": False,
        "ha_nodelay": False,
        "devices_nodelay": False,
        "pin_ha": False,
        "command_qos": "auto",
    }
    assert raw["tuned"]["network"]["ha_nodelay"] is True
    assert (raw["qos1"]["network"]["broker_nodelay"], raw["qos1"]["network"]["command_qos"]) == (
        True,
        1,
    )
    for stage in ("stock", "broker", "devices", "tuned", "qos1"):
        for pattern in ("spaced", "burst"):
            latency = raw[stage]["latency"][pattern]
            assert {"mqtt_publish_qos0", "mqtt_publish_qos1", "wlte_confirmed"} <= set(latency)
            assert all(kind["errors"] == 0 for kind in latency.values()), (stage, latency)
    # The Commands API answered every send with the record stored and still pending (the
    # client counts any other answer as an error).
    for pattern in ("spaced", "burst"):
        assert raw["stock"]["latency"][pattern]["iotee_send"]["errors"] == 0
        assert raw["stock"]["latency"][pattern]["iotee_send_api_key"]["errors"] == 0
    for stage, sides in (
        ("stock", ("iotee",)),
        ("tuned", ("iotee",)),
    ):
        throughput = raw[stage]["throughput"]
        for side in sides:
            assert throughput[side]["statuses"] == {
                "completed": 2 * throughput["commands_per_run"]
            }, (stage, side)
    # Row 3's breakdown counts the pieces the tracked side goes through, once per command for
    # those that happen once; the bare side tracks nothing.
    breakdown = raw["tuned"]["throughput"]["breakdown"]
    tracked = breakdown["iotee"]
    for label in (
        "tracking a new command: its matcher and deadline (`track`)",
        "the command's end (`end`: completed)",
        "finding the device and command (`resolve`)",
    ):
        assert tracked[label]["calls_per_command"] == 1.0, label
        assert tracked[label]["us_per_command"] > 0, label
        assert breakdown["baseline"][label]["calls_per_command"] == 0, label
    history = raw["stock"]["history"]
    assert history["ours"]["purged"] == history["ours"]["rows"] == 1000
    assert history["ours"]["device_history"]["returned"] == 100
    assert history["baseline"]["device_history"]["returned"] == 100
    # Row 6: 10 offline devices at --quick, 10 queued commands each, every one published once.
    queue = raw["stock"]["queue"]
    assert (queue["devices"], queue["commands"]) == (10, 100)
    assert queue["delivered"] == queue["published"] == 100
    assert queue["published_once"] is True
    assert queue["timed_out"] is False
    assert rows["6.queue_drain.stall"]["target"] == "≤ 50 ms, all 100 delivered"
    booted = raw["startup"]["iotee"][0]
    assert (booted["devices"], booted["entities"]) == (5, 25)
    assert booted["entities_available"] == booted["entities"]
    assert booted["slowest"], "the slowest loop callbacks of the startup are named"


def test_insert_latency_measures_every_insert() -> None:
    """``python -m bench.insert_latency`` stores every command it times and prints the figures."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.insert_latency", "50"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.startswith("50 inserts: p50 ")
    assert "the worker thread's bare round trip p50" in proc.stdout
