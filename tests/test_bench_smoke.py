"""The benchmark's machinery at tiny sizes, so that ``scripts/bench`` cannot silently rot.

It runs exactly what ``scripts/bench`` runs (``python -m bench``: a real broker, real Home
Assistant stage processes, simulated devices, the HTTP client) with ``--quick``. Nothing here
judges a time: the benchmark's numbers are ratios for people to read, not assertions.
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
        timeout=180,
        check=False,
    )


async def test_bench_quick_run_measures_every_row(hass: HomeAssistant, tmp_path: Path) -> None:
    """Every row of the table gets a baseline, a measurement and a ratio; the JSON is printed."""
    out = tmp_path / "quick.json"
    proc = await hass.async_add_executor_job(_run_quick, out)
    assert proc.returncode == 0, proc.stderr[-4000:]

    result = json.loads(out.read_text())
    assert json.loads(proc.stdout[: proc.stdout.index("\n}\n") + 2]) == result
    assert "| measure | baseline | IoTee | ratio | target | met |" in proc.stdout
    assert result["quick"] is True
    assert {"nproc", "cpu_model", "memory_gib", "python", "homeassistant"} <= set(result["machine"])

    rows = {row["key"]: row for row in result["rows"]}
    for prefix in ("1.", "2.", "3.", "4.", "5."):
        assert any(key.startswith(prefix) for key in rows), prefix
    for row in rows.values():
        for field in ("baseline", "ours", "ratio"):
            assert math.isfinite(row[field]), (row["key"], field)
            assert row[field] >= 0, (row["key"], field)
        assert row["met"] in (True, False, None)
        assert (row["met"] is None) == (row["target"] == ""), row["key"]

    raw = result["raw"]
    latency = raw["runtime"]["latency"]
    assert all(kind["errors"] == 0 for kind in latency.values()), latency
    assert raw["runtime"]["throughput"]["iotee"]["statuses"] == {
        "completed": 2 * raw["runtime"]["throughput"]["commands_per_run"]
    }
    history = raw["runtime"]["history"]
    assert history["ours"]["purged"] == history["ours"]["rows"] == 1000
    assert history["ours"]["device_history"]["returned"] == 100
    assert history["baseline"]["device_history"]["returned"] == 100
    booted = raw["startup"]["iotee"][0]
    assert (booted["devices"], booted["entities"]) == (5, 25)
    assert booted["entities_available"] == booted["entities"]
