"""``python -m bench.pcap CAPTURE...``: which MQTT packets waited for a delayed ACK.

Reads a capture of the broker's port (``scripts/bench --capture FILE``, tshark on loopback) and
finds every data segment that Nagle's algorithm held: it left within 0.3 ms of a pure ACK (no
data) from the peer acknowledging the sender's previous small segment, which had been
unacknowledged for more than 5 ms (Linux delays an ACK by 40 ms or more when it has nothing to
send with it). Connections whose CONNECT is in the capture are the simulated devices (client ids
``sim-...``); the one connected before it started is Home Assistant's. For each connection role
(Home Assistant, the devices) and direction it prints how many segments were held, behind which
MQTT packet, and how long that packet's ACK took.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
import statistics
import subprocess
import sys

MQTT_TYPES = {
    "1": "CONNECT",
    "2": "CONNACK",
    "3": "PUBLISH",
    "4": "PUBACK",
    "8": "SUBSCRIBE",
    "9": "SUBACK",
    "12": "PINGREQ",
    "13": "PINGRESP",
}
RELEASE_WITHIN = 0.0003
OUTSTANDING_FOR = 0.005


@dataclass(slots=True)
class Segment:
    """One TCP segment with data."""

    at: float
    src: int
    dst: int
    length: int
    seq: int
    ack: int
    types: str


def _name(types: str) -> str:
    """What a segment carries: ``PUBLISH`` when it carries one (with or without others), else
    its first MQTT packet."""
    packets = [MQTT_TYPES.get(t, t) for t in types.split(",") if t]
    if not packets:
        return "(pure ACK)"
    return "PUBLISH" if "PUBLISH" in packets else packets[0]


def read(capture: str, port: int) -> tuple[list[Segment], dict[int, str]]:
    """Return the segments and the client id of each client port."""
    fields = ["frame.time_relative", "tcp.srcport", "tcp.dstport", "tcp.len", "tcp.seq"]
    fields += ["tcp.ack", "mqtt.msgtype", "mqtt.clientid"]
    command = ["tshark", "-r", capture, "-d", f"tcp.port=={port},mqtt", "-T", "fields"]
    command += ["-E", "separator=|", *(arg for field in fields for arg in ("-e", field))]
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    segments: list[Segment] = []
    clients: dict[int, str] = {}
    for line in out.splitlines():
        at, src, dst, length, seq, ack, types, client_id = line.split("|")
        if client_id and int(dst) == port:
            clients[int(src)] = client_id
        segments.append(
            Segment(float(at), int(src), int(dst), int(length or 0), int(seq), int(ack), types)
        )
    return segments, clients


def _role(client_id: str) -> str:
    if client_id.startswith("sim-"):
        return "device"
    if client_id.startswith("bench-"):
        return "bench"
    return "Home Assistant"


def held_segments(
    segments: list[Segment], port: int, clients: dict[int, str]
) -> list[dict[str, object]]:
    """Every data segment released by the peer's ACK of an older small segment."""
    held: list[dict[str, object]] = []
    # Per direction (src, dst): the data segments not yet acknowledged, oldest first.
    outstanding: dict[tuple[int, int], list[Segment]] = defaultdict(list)
    last_ack_at: dict[tuple[int, int], float] = {}
    data_in_at = -1.0
    """When the broker last received data on any connection."""
    for seg in segments:
        back = (seg.dst, seg.src)
        # This segment acknowledges the peer's data up to seg.ack.
        queue = outstanding[back]
        acked = [s for s in queue if s.seq + s.length <= seg.ack]
        if acked and seg.length:
            # Data that acknowledges data is an answer, not a delayed ACK: forget, do not count.
            outstanding[back] = [s for s in queue if s.seq + s.length > seg.ack]
            last_ack_at.pop(back, None)
        elif acked:
            outstanding[back] = [s for s in queue if s.seq + s.length > seg.ack]
            last_ack_at[back] = seg.at
            last_ack_at[(back[0], back[1], "oldest")] = acked[0].at  # type: ignore[index]
            last_ack_at[(back[0], back[1], "type")] = acked[-1].types  # type: ignore[index]
        if seg.length == 0:
            continue
        key = (seg.src, seg.dst)
        released = last_ack_at.get(key)
        # The broker forwarding what it just received is an answer too, not a release.
        forwarded = seg.src == port and seg.at - data_in_at <= RELEASE_WITHIN
        if seg.dst == port:
            data_in_at = seg.at
        if not forwarded and released is not None and 0 <= seg.at - released <= RELEASE_WITHIN:
            oldest = last_ack_at[(seg.src, seg.dst, "oldest")]  # type: ignore[index]
            waited = released - oldest
            if waited > OUTSTANDING_FOR:
                client_port = seg.src if seg.dst == port else seg.dst
                held.append(
                    {
                        "role": _role(clients.get(client_port, "")),
                        "direction": "to broker" if seg.dst == port else "from broker",
                        "held": _name(seg.types),
                        "behind": _name(last_ack_at[(seg.src, seg.dst, "type")]),  # type: ignore[index]
                        "waited_ms": waited * 1000,
                    }
                )
        outstanding[key].append(seg)
    return held


def broker_port(capture: str) -> int:
    """Return the port every conversation of the capture shares: the broker's."""
    out = subprocess.run(
        ["tshark", "-r", capture, "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ports = Counter(port for line in out.splitlines() for port in line.split())
    return int(ports.most_common(1)[0][0])


def main(argv: list[str]) -> int:
    """Print the summary of each capture."""
    for capture in argv:
        print(f"{capture}:\n")
        summarize(capture)
        print()
    return 0


def summarize(capture: str) -> None:
    """Print the table of one capture."""
    port = broker_port(capture)
    segments, clients = read(capture, port)
    held = held_segments(segments, port, clients)
    data = Counter(
        (
            _role(clients.get(s.src if s.dst == port else s.dst, "")),
            "to broker" if s.dst == port else "from broker",
        )
        for s in segments
        if s.length
    )
    groups: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for item in held:
        key = (str(item["role"]), str(item["direction"]), str(item["held"]), str(item["behind"]))
        groups[key].append(float(item["waited_ms"]))  # type: ignore[arg-type]
    print(
        "| connection | direction | data segments | held segment | held behind | count"
        " | ACK after (median) |"
    )
    print("|---|---|---|---|---|---|---|")
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    for (role, direction, what, behind), waits in ordered:
        print(
            f"| {role} | {direction} | {data[(role, direction)]:,} | {what} | {behind} "
            f"| {len(waits):,} | {statistics.median(waits):.1f} ms |"
        )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
