"""The HTTP client of the latency rows, run as its own process (``python -m bench.client``).

It reads a job (JSON) on stdin, sends the requests one at a time over one keep-alive connection,
interleaving the kinds (rotating their order every round so that none always goes first), and
writes every latency on stdout as JSON. Running outside Home Assistant's process, pinned to
another core, keeps the client's own work off the event loop being measured.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
import uuid

import aiohttp


async def _one(
    session: aiohttp.ClientSession, base: str, kind: dict[str, Any], round_no: int
) -> tuple[float, str | None]:
    """Send one request of ``kind``; return its latency and an error (None when as expected)."""
    headers = dict(kind.get("headers", {}))
    if kind.get("idempotency"):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    path = str(kind["path"])
    relays = int(kind.get("relays", 0))
    if relays:
        path = path.format(relay=round_no % relays + 1)
    started = time.perf_counter()
    async with session.request(
        kind["method"], base + path, json=kind["json"], headers=headers
    ) as r:
        body = await r.read()
    elapsed = time.perf_counter() - started
    if r.status != kind["expect"]:
        return elapsed, f"HTTP {r.status}: {body[:200]!r}"
    expect_status = kind.get("expect_data_status")
    if expect_status is not None:
        status = json.loads(body)["data"]["status"]
        if status != expect_status:
            return elapsed, f"data.status {status}"
    return elapsed, None


async def run(job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job``: ``base``, ``kinds`` (name -> request), ``rounds``, ``warmup``, ``gap``."""
    kinds: dict[str, dict[str, Any]] = job["kinds"]
    names = list(kinds)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    errors: dict[str, list[str]] = {name: [] for name in names}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for round_no in range(job["warmup"] + job["rounds"]):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed, error = await _one(session, job["base"], kinds[name], round_no)
                if round_no >= job["warmup"]:
                    latencies[name].append(elapsed)
                    if error is not None:
                        errors[name].append(error)
                await asyncio.sleep(job["gap"])
    return {"latencies": latencies, "errors": errors}


def main() -> int:
    """Read the job from stdin, print the result on stdout."""
    job = json.loads(sys.stdin.read())
    result = asyncio.run(run(job))
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
