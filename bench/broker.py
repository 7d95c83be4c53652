"""A mosquitto process on a free loopback port, and a one-shot publisher of retained messages."""

from __future__ import annotations

import os
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulator.broker import Mosquitto, find_mosquitto, free_port

__all__ = ["Broker", "find_mosquitto", "free_port", "pin", "publish_retained"]


def pin(pid: int, cpus: set[int] | None) -> None:
    """Restrict process ``pid`` to ``cpus`` (no-op when None)."""
    if cpus:
        os.sched_setaffinity(pid, cpus)


class Broker(Mosquitto):
    """mosquitto without persistence, tuned for the benchmark, optionally pinned to CPUs."""

    def __init__(self, workdir: Path, cpus: set[int] | None = None) -> None:
        """Prepare a broker in ``workdir``; ``cpus`` pins it."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.cpus = cpus
        super().__init__(workdir, extra_config="max_queued_messages 100000\nset_tcp_nodelay true\n")

    def _started(self, pid: int) -> None:
        pin(pid, self.cpus)


def publish_retained(host: str, port: int, messages: list[tuple[str, str]]) -> None:
    """Publish ``(topic, payload)`` pairs retained with QoS 1 and wait until the broker has all."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-retain-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.connect(host, port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
