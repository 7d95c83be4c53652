"""The HTTP client of the latency rows, run as its own process (``python -m bench.client``).

It reads a job (JSON) on stdin and sends requests over one keep-alive connection, one at a time,
in two patterns, then writes every latency on stdout as JSON:

- ``spaced``: one request of each kind per round, the kinds interleaved in an order shuffled
  every round (seeded), so that every kind follows every other kind about equally often - what
  the request before left on the connections (a device's answer still on its way, an ACK still
  delayed) is spread evenly over the kinds - and ``gap`` seconds after every request;
- ``burst``: ``size`` requests of one kind back to back (the next one sent as soon as the answer
  to the last is in), then ``pause`` seconds of quiet, then the next kind's burst (their order
  rotating) - a REST caller or an automation sending a few commands in a row.

Running outside Home Assistant's process keeps the client's own work off the event loop being
measured.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import time
from typing import Any
import uuid

import aiohttp


class _Kind:
    """One kind of request; ``relays`` rotate through ``{relay}`` in its path."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.serial = itertools.count()

    async def send(self, session: aiohttp.ClientSession, base: str) -> tuple[float, str | None]:
        """Send one request; return its latency and an error (None when as expected)."""
        spec = self.spec
        headers = dict(spec.get("headers", {}))
        if spec.get("idempotency"):
            headers["Idempotency-Key"] = uuid.uuid4().hex
        path = str(spec["path"])
        relays = int(spec.get("relays", 0))
        if relays:
            path = path.format(relay=next(self.serial) % relays + 1)
        started = time.perf_counter()
        async with session.request(
            spec["method"], base + path, json=spec["json"], headers=headers
        ) as r:
            body = await r.read()
        elapsed = time.perf_counter() - started
        if r.status != spec["expect"]:
            return elapsed, f"HTTP {r.status}: {body[:200]!r}"
        expect_status = spec.get("expect_status")
        if expect_status is not None:
            found: Any = json.loads(body)
            for key in spec["status_at"]:
                found = found[key]
            if found != expect_status:
                return elapsed, f"{'.'.join(spec['status_at'])} {found}"
        return elapsed, None


class _Results:
    def __init__(self, names: list[str]) -> None:
        self.latencies: dict[str, list[float]] = {name: [] for name in names}
        self.errors: dict[str, list[str]] = {name: [] for name in names}

    def add(self, name: str, elapsed: float, error: str | None) -> None:
        self.latencies[name].append(elapsed)
        if error is not None:
            self.errors[name].append(error)

    def as_json(self) -> dict[str, Any]:
        return {"latencies": self.latencies, "errors": self.errors}


async def _spaced(
    session: aiohttp.ClientSession, base: str, kinds: dict[str, _Kind], job: dict[str, Any]
) -> dict[str, Any]:
    names = list(kinds)
    results = _Results(names)
    order = random.Random(16)
    for round_no in range(job["warmup"] + job["rounds"]):
        for name in order.sample(names, len(names)):
            elapsed, error = await kinds[name].send(session, base)
            if round_no >= job["warmup"]:
                results.add(name, elapsed, error)
            await asyncio.sleep(job["gap"])
    return results.as_json()


async def _bursts(
    session: aiohttp.ClientSession, base: str, kinds: dict[str, _Kind], job: dict[str, Any]
) -> dict[str, Any]:
    names = list(kinds)
    results = _Results(names)
    for burst_no in range(job["warmup"] + job["bursts"]):
        shift = burst_no % len(names)
        for name in names[shift:] + names[:shift]:
            for _ in range(job["size"]):
                elapsed, error = await kinds[name].send(session, base)
                if burst_no >= job["warmup"]:
                    results.add(name, elapsed, error)
            await asyncio.sleep(job["pause"])
    return results.as_json()


async def run(job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job``: ``base``, ``kinds`` (name -> request), ``patterns`` (name -> settings)."""
    kinds = {name: _Kind(spec) for name, spec in job["kinds"].items()}
    out: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for pattern, settings in job["patterns"].items():
            runner = _bursts if "bursts" in settings else _spaced
            out[pattern] = await runner(session, job["base"], kinds, settings)
    return out


def main() -> int:
    """Read the job from stdin, print the result on stdout."""
    job = json.loads(sys.stdin.read())
    result = asyncio.run(run(job))
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
