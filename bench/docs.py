"""``docs/performance.md`` (and README's table between its markers) from a benchmark result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .hassenv import REPO
from .report import README_END, README_START, Row, build_rows, machine_line, markdown_tables

DOC = REPO / "docs" / "performance.md"
README = REPO / "README.md"

_HOW = """\
## How it is measured

`scripts/bench` (after `scripts/setup`; about 2 minutes on the machine above; `--help` for the
sizes) starts a real mosquitto and real Home Assistant instances - `bootstrap.async_setup_hass`
inside a fresh process per instance, with the default integrations, HA's HTTP server, auth, REST
API and MQTT integration - and measures. Every line compares IoTee with a baseline taken in the
same run; the ratio is IoTee / baseline. It prints the JSON result and this table, writes the
JSON to `bench/results/latest.json` and regenerates this page. Nothing asserts absolute times:
`tests/test_bench_smoke.py` only runs the machinery at tiny sizes so that it cannot rot.

- **CPUs** (machines with 2+ CPUs): every Home Assistant process runs on CPU 0 only - its event
  loop, IoTee's store thread and HA's executor share one core, so "one core" in row 3 is literal
  - and the broker, the simulated devices and the HTTP client on the other CPUs. That is the
  conservative choice for IoTee, whose store thread then competes with the event loop; letting
  HA use both cores of this VM made ratios look better but only by adding about 1 ms of CPU
  wake-up latency to every request on both sides. The load average at start and end is in the
  JSON: anything else running on the machine shows in the numbers.
- **1. REST send latency**: an HTTP client in its own process sends, one at a time over one
  keep-alive connection, HA's `POST /api/services/mqtt/publish` with topic `iotee/dev/H/rls`,
  payload `0`, QoS 1, and IoTee's `POST /api/iotee/devices/H/commands` `{"command": "unlock"}`
  (which publishes exactly that) - with the same HA long-lived access token, and again with an
  IoTee API key. The kinds are interleaved, their order rotating, 5 ms apart; 1,000 of each after
  a warm-up. A simulated lock (`simulator`, answering at once) is connected throughout, so both
  kinds cause the same device traffic.
- **2. Confirmed round trip**: the WLTE relay API `POST .../relays/{index}/commands` with an
  Idempotency-Key, answered after the simulated controller confirmed (`SUCCESS`), interleaved
  with the requests of row 1; compared with row 1's bare publish.
- **3. Throughput**: 32 closed loops inside HA, each on its own relay of 8 simulated WLTE
  controllers: the baseline calls `mqtt.publish` with a WLTE command and waits for the device's
  `SUCCESS`; IoTee calls `iotee.relay_command` with `wait: true` (stored before the publish,
  tracked, every status change persisted and evented, entities updated). 2 x 4,000 commands
  each, alternating, after a warm-up; IoTee's runs end when the last status change is on disk.
  The HA CPU share says which side was the bottleneck.
- **4. History at scale**: rows shaped like the store's own (built with its row function from
  real records), spread over 100 devices and 90 days, bulk-inserted through the store's SQLite
  connection on its worker thread. Queries (`limit=100`, 200 each), the purge of everything and
  the file size are measured through the engine as HA calls it (the store's worker thread,
  awaited from the event loop), first with 1,000 stored commands (the baseline), then with
  1,000,000. A callback due every 2 ms on HA's event loop records the longest stall (it reads up
  to 2 ms low); its baseline is the same probe on an idle loop.
- **5. Startup**: two config directories, the IoTee hub with 500 devices (200 locks, 200 4-relay
  WLTE controllers, 100 2-relay Tasmotas: 2,500 entities) and the hub with none, each with its
  own broker holding the devices' retained availability and states. After one warm-up boot each
  (which creates the registries, as a real restart finds them), 3 measured boots per variant,
  alternating, each a fresh process; medians. "Until every device's state is in" runs from the
  start of HA's bootstrap until IoTee has taken in every device's retained availability.
- **TCP_NODELAY**: paho (HA's MQTT client and the simulator's) leaves Nagle's algorithm on, and
  mosquitto's `set_tcp_nodelay` is off by default; a publish following another small packet
  within 40 ms then waits for the peer's delayed ACK. That adds 40 ms to any MQTT round trip, HA's
  bare publish as much as IoTee's, and would drown what is measured here, so the benchmark turns
  Nagle off on the broker, on HA's MQTT client socket and on the simulated devices' sockets.
"""


_FINDINGS = """\
## What the benchmark found

Fixed while building this benchmark:

- **Every entity heard every change of every device.** Each IoTee entity registered for all
  command and device updates and filtered them itself, so one status change called every
  entity of every device (2,500 at 500 devices). Listeners are now looked up by target and by
  device.
- **The store thread woke up while a REST answer was still being written.** The status update
  after a publish was handed to IoTee's store thread at once; on one core that thread then
  competed with the event loop finishing the request. Updates are now handed over at the end of
  the loop iteration - still in order, and a read issued right after still sees them.
- **A Home Assistant access token was validated twice.** HA's auth middleware validates the
  Bearer token before the view runs; the IoTee API now uses the user HA found for that very
  header instead of decoding the JWT again (only when HA authenticated the request by it).
- **Purging was I/O- and cache-bound.** The purge now runs with a 64 MiB page cache (random
  command ids scatter the primary-key index) and, on SQLite builds with SECURE_DELETE, with
  `secure_delete=FAST`, which stops zero-filling every freed page.
- **A purge held the store for seconds.** Purging 1,000,000 commands kept IoTee's store thread
  busy for about 4 s, and a command created meanwhile waited for all of it before it could be
  stored and published. The purge now deletes in chunks of 20,000 within its transaction and,
  when a call is waiting for the store, commits and lets it run first (then goes on); with
  nothing waiting it is still one transaction. Committing after every chunk instead cost 1.5x.
- **WAL checkpoints ran inside a new command's insert.** SQLite checkpoints on the commit that
  crosses its threshold, which was as often the insert a REST request waits for as anything
  else. IoTee now checkpoints after a status update every 250 commits (updates are written
  after the caller has its answer) and keeps SQLite's own only as a bound, at 10,000 pages.

Known costs that remain:

- **The durable insert.** A command is stored before it is published: one round trip to the
  store thread and an SQLite commit (about 0.13 ms on one core), a fifth of HA's bare publish.
  With an HA token, row 1 sits at the 1.3x line: IoTee adds about 0.26 ms to a request either
  way, and the ratio moves by ±0.05x between runs with the baseline (0.8-1.05 ms at p50 on
  this VM); an `X-API-Key` request, which HA's own middleware does not validate, stays below.
- **Startup.** Most of the longest loop stall while 500 devices' retained states arrive is Home
  Assistant's MQTT client matching each new topic against the wildcard subscriptions of every
  MQTT-discovering integration; IoTee's share (state writes of the device's entities) is about
  a sixth.
"""


def _cpu_list(cpus: list[int]) -> str:
    return ", ".join(str(cpu) for cpu in cpus)


def render(result: dict[str, Any], rows: list[Row]) -> str:
    """Return the page."""
    pinning = result["pinning"]
    pinned = (
        f"Home Assistant pinned to CPU {_cpu_list(pinning['home_assistant'])}, broker, devices "
        f"and client to CPU {_cpu_list(pinning['broker_devices_client'])}"
        if pinning["home_assistant"]
        else "no CPU pinning (one CPU)"
    )
    load = result["load_average"]["start"][0]
    sizes = result["sizes"]
    return (
        "# Performance\n\n"
        "What IoTee costs a Home Assistant box, measured by `scripts/bench` against a real\n"
        "mosquitto and real Home Assistant instances; every line is a ratio against a baseline\n"
        "taken in the same run.\n\n"
        f"Latest run: {result['generated_at']}, {result['duration_s']:.0f} s. "
        f"**{result['summary']}.**\n\n"
        f"Machine: {machine_line(result['machine'])}. {pinned}; load average at start "
        f"{load:.2f}.\n\n"
        f"Sizes: {sizes['spaced_rounds']:,} spaced requests and {sizes['bursts']} bursts of "
        f"{sizes['burst_size']} per kind (rows 1-2), "
        f"{sizes['tp_commands']:,} commands per throughput run, "
        f"{sizes['history_rows']:,} stored commands, {sizes['startup_devices']} devices at "
        f"startup.\n\n"
        f"{markdown_tables(rows, result['raw'])}\n\n"
        f"{_HOW}\n"
        f"{_FINDINGS}"
    )


def write_docs(result: dict[str, Any], rows: list[Row]) -> list[Path]:
    """Rewrite docs/performance.md; replace README's table between its markers if it has them."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render(result, rows))
    written = [DOC]
    if README.exists():
        text = README.read_text()
        start, end = text.find(README_START), text.find(README_END)
        if 0 <= start < end:
            block = (
                f"{README_START}\n"
                f"{markdown_tables(rows, result['raw'], '####')}\n\n"
                f"Measured {result['generated_at'][:10]} on {machine_line(result['machine'])}; "
                f"{result['summary']}. Details: [docs/performance.md](docs/performance.md).\n"
            )
            README.write_text(text[:start] + block + text[end:])
            written.append(README)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.docs [RESULT.json]``: rewrite the docs from a stored result."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else REPO / "bench" / "results" / "latest.json"
    result: dict[str, Any] = json.loads(path.read_text())
    for written in write_docs(result, build_rows(result["raw"])):
        print(f"bench: wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
